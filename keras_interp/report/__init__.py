"""The `keras-interp compare` report: its tables, figures, report.md and report.html."""

from keras_interp.report.document import comparison_markdown
from keras_interp.report.document import write_html
from keras_interp.report.document import write_markdown
from keras_interp.report.document import write_report
from keras_interp.report.figures import attribution_figure
from keras_interp.report.figures import metrics_over_epochs_figure
from keras_interp.report.tables import comparison_table
from keras_interp.report.tables import format_value

__all__ = [
    "attribution_figure",
    "comparison_markdown",
    "comparison_table",
    "format_value",
    "metrics_over_epochs_figure",
    "write_html",
    "write_markdown",
    "write_report",
]
