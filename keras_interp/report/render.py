"""The report's blocks as Markdown text or as one self-contained HTML page."""

import base64
import html

from keras_interp.report.tables import format_value

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_STYLE = """
body{margin:0;color:#1f2328;background:#fff;line-height:1.5;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:24px 16px 48px}
h1{font-size:1.6em;margin:0 0 .4em}
h2{font-size:1.2em;margin:1.8em 0 .6em;padding-bottom:.2em;border-bottom:1px solid #d0d7de}
ul{padding-left:1.2em}
.scroll{overflow-x:auto;margin:.4em 0 1em}
table{border-collapse:collapse;font-size:.88em}
th,td{padding:4px 10px;border-bottom:1px solid #d8dee4;white-space:nowrap;text-align:left}
td{vertical-align:top}
thead th{background:#eaeef2;vertical-align:bottom;white-space:normal;min-width:4.5em}
thead th[colspan]{text-align:center}
tbody tr:nth-child(even){background:#f6f8fa}
.num{text-align:right;font-variant-numeric:tabular-nums}
.sem{display:block;font-size:.85em;color:#57606a}
td.wrap{white-space:normal;min-width:24em}
.item{white-space:nowrap}
figure{margin:.5em 0}
img{max-width:100%;height:auto}
figcaption,.note{color:#57606a;font-size:.9em}
""".strip()


def png_bytes(path):
    """The bytes of the PNG at `path`, or None for a missing or non-PNG file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data if data.startswith(_PNG_SIGNATURE) else None


def _column_groups(table):
    names = []
    for name, span in table["groups"] or [("", len(table["columns"]))]:
        names += [name] * span
    return names


def _markdown_cell(cell):
    if "items" in cell:
        text = ", ".join(cell["items"])
    elif "mean" in cell:
        text = format_value(cell["mean"], cell["sem"])
    else:
        text = cell["text"]
    text = text.replace("|", "\\|")
    return f"**{text}**" if cell["bold"] else text


def markdown(blocks):
    """The blocks as Markdown; images are linked by their relative path."""
    lines = []
    for kind, *rest in blocks:
        if kind == "h1":
            lines += [f"# {rest[0]}", ""]
        elif kind == "h2":
            lines += [f"## {rest[0]}", ""]
        elif kind == "p":
            lines += [rest[0], ""]
        elif kind == "list":
            lines += [f"- **{k}**: {v}" for k, v in rest[0]] + [""]
        elif kind == "image":
            caption, rel, full = rest
            if png_bytes(full) is None:
                lines += [f"*Figure not found: {rel}*", ""]
            else:
                lines += [f"![{caption}]({rel})", "", caption, ""]
        elif kind == "table":
            t = rest[0]
            # Markdown has one header row: a column group becomes a prefix.
            heads = [f"{g}: {c}" if g else c for g, c in zip(_column_groups(t), t["columns"])]
            lines.append("| " + " | ".join(h.replace("|", "\\|") for h in heads) + " |")
            lines.append("|" + "|".join("---:" if k == "num" else "---" for k in t["kinds"]) + "|")
            for row in t["rows"]:
                lines.append("| " + " | ".join(_markdown_cell(c) for c in row) + " |")
            lines.append("")
    return "\n".join(lines)


def _html_cell(cell):
    esc = html.escape
    if "items" in cell:
        # Items break between each other, never inside `key=value`.
        return ", ".join(f'<span class="item">{esc(item)}</span>' for item in cell["items"])
    if "mean" in cell:
        # The standard error goes under its mean, smaller, so a column is as
        # wide as one number and ten of them fit the page.
        text = esc(format_value(cell["mean"]))
        text = f"<strong>{text}</strong>" if cell["bold"] else text
        if cell["mean"] is not None and cell["sem"] is not None:
            text += f'<span class="sem">± {esc(format_value(cell["sem"]))}</span>'
        return text
    text = esc(cell["text"])
    return f"<strong>{text}</strong>" if cell["bold"] else text


def _html_table(t):
    esc = html.escape
    attrs = [f' class="{k}"' if k != "label" else "" for k in t["kinds"]]
    out = ['<div class="scroll"><table><thead>']
    if t["groups"]:
        out.append("<tr>" + "".join(
            f'<th colspan="{s}" scope="colgroup">{esc(g)}</th>' for g, s in t["groups"]
        ) + "</tr>")
    out.append("<tr>" + "".join(
        f'<th scope="col"{a}>{esc(c)}</th>' for c, a in zip(t["columns"], attrs)
    ) + "</tr></thead><tbody>")
    for row in t["rows"]:
        out.append("<tr>" + "".join(
            f"<td{a}>{_html_cell(c)}</td>" for c, a in zip(row, attrs)
        ) + "</tr>")
    out.append("</tbody></table></div>")
    return out


def page(blocks, title):
    """The blocks as one HTML page: inline style, figures as `data:` URIs."""
    esc = html.escape
    out = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body><main>"]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "p"):
            out.append(f"<{kind}>{esc(rest[0])}</{kind}>")
        elif kind == "list":
            items = "".join(f"<li><strong>{esc(k)}</strong>: {esc(v)}</li>" for k, v in rest[0])
            out.append(f"<ul>{items}</ul>")
        elif kind == "image":
            caption, rel, full = rest
            data = png_bytes(full)
            if data is None:
                out.append(f'<p class="note">Figure not found: {esc(rel)}</p>')
            else:
                uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                out.append(f'<figure><img src="{uri}" alt="{esc(caption)}">'
                           f"<figcaption>{esc(caption)}</figcaption></figure>")
        elif kind == "table":
            out += _html_table(rest[0])
    out.append("</main></body></html>\n")
    return "\n".join(out)
