"""`keras-interp` (also `python -m keras_interp`): a thin front over
`keras_interp.experiments`."""

import argparse
import sys


def _parser():
    parser = argparse.ArgumentParser(
        prog="keras-interp",
        description="Train Keras models for interpretability and measure it. "
        "The backend is chosen by KERAS_BACKEND (tensorflow, jax, torch).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train small_cnn on the embedded MNIST digits and save IG and "
        "GradientSHAP maps",
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    demo.add_argument("--num-images", type=int, default=8, help="digits to explain (default: 8)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    # Imported here so `--help` answers without loading a framework.
    from keras_interp import experiments

    if args.command == "demo":
        experiments.demo(
            args.out,
            epochs=args.epochs,
            num_images=args.num_images,
            seed=args.seed,
            verbose=0 if args.quiet else 1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
