"""The papers' experiments as functions returning plain dicts; the CLI calls them."""

from keras_interp.experiments.atex_paper import adversarial_training_efficacy
from keras_interp.experiments.atex_paper import atex_defences
from keras_interp.experiments.atex_paper import manipulation_table
from keras_interp.experiments.atex_paper import smoothness_vs_smoothgrad
from keras_interp.experiments.demo import demo

__all__ = [
    "adversarial_training_efficacy",
    "atex_defences",
    "demo",
    "manipulation_table",
    "smoothness_vs_smoothgrad",
]
