"""The papers' experiments as functions returning plain dicts; the CLI calls them."""

from keras_interp.experiments.atex_paper import adversarial_training_efficacy
from keras_interp.experiments.atex_paper import atex_defences
from keras_interp.experiments.atex_paper import manipulation_table
from keras_interp.experiments.atex_paper import smoothness_vs_smoothgrad
from keras_interp.experiments.comparison import compare
from keras_interp.experiments.protocol import METHODS
from keras_interp.experiments.protocol import evaluate_model
from keras_interp.experiments.protocol import fine_tune
from keras_interp.experiments.protocol import train_standard

__all__ = [
    "METHODS",
    "adversarial_training_efficacy",
    "atex_defences",
    "compare",
    "evaluate_model",
    "fine_tune",
    "manipulation_table",
    "smoothness_vs_smoothgrad",
    "train_standard",
]
