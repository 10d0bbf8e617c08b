"""keras_interp: train Keras models to be interpretable, and measure it."""

from keras_interp import attribution
from keras_interp import backend

__version__ = "0.1.0"

__all__ = ["attribution", "backend"]
