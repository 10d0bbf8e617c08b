"""keras_interp: train Keras models to be interpretable, and measure it."""

from keras_interp import atex
from keras_interp import attacks
from keras_interp import attribution
from keras_interp import backend
from keras_interp import callbacks
from keras_interp import data
from keras_interp import experiments
from keras_interp import hooks
from keras_interp import layers
from keras_interp import metrics
from keras_interp import models
from keras_interp import regularizers
from keras_interp import report
from keras_interp.lambda_search import select_lambda
from keras_interp.model import RegularizedModel

__version__ = "0.1.0"

__all__ = [
    "RegularizedModel",
    "atex",
    "attacks",
    "attribution",
    "backend",
    "callbacks",
    "data",
    "experiments",
    "hooks",
    "layers",
    "metrics",
    "models",
    "regularizers",
    "report",
    "select_lambda",
]
