"""AdversarialTraining's arguments and config (its loss is checked in test_model.py)."""

import pytest

from keras_interp import regularizers

pytestmark = pytest.mark.multibackend


def test_config_round_trip():
    reg = regularizers.AdversarialTraining(0.1, steps=3, step_size=0.05, norm="l2", clip=(0, 1))
    again = regularizers.AdversarialTraining.from_config(reg.get_config())
    assert again.get_config() == reg.get_config()
    assert again.clip == (0.0, 1.0) and again.replaces_loss


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epsilon=0), "Received: epsilon=0.0"),
        (dict(epsilon=0.1, steps=0), "Received: steps=0"),
        (dict(epsilon=0.1, norm="l1"), "Received: norm='l1'"),
        (dict(epsilon=0.1, clip=(1, 0)), r"Received: clip=\(1.0, 0.0\)"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        regularizers.AdversarialTraining(**kwargs)
