"""What the callbacks share, without the optional extras: the Sparsifier's arguments."""

import pytest
from torch import nn

from shrinkage.integrations._common import SparsifierSpec
from shrinkage.weights import Constant, Cubic


def test_rigl_gets_its_static_schedule_and_update_end_from_the_training_length():
    spec = SparsifierSpec(0.9, "rigl", method_params={"drop_fraction": 0.5})
    sp = spec.build(nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 2)), total_steps=400)
    assert sp.schedule == Constant() and sp.method_params["update_end"] == 300
    assert sp.method_params["drop_fraction"] == 0.5
    with pytest.raises(ValueError, match="needs the number of training steps"):
        spec.build(nn.Sequential(nn.Linear(6, 8)), total_steps=None)


def test_the_hugging_face_callback_refuses_str():
    pytest.importorskip("transformers")
    from shrinkage.integrations.hf import SparsifierCallback

    with pytest.raises(ValueError, match="method 'str' learns new threshold parameters"):
        SparsifierCallback(0.9, "str")
    SparsifierCallback(0.9, "rigl")


@pytest.mark.parametrize(
    "schedule, match",
    [
        (Cubic, "got the class Cubic"),
        (lambda step: 0.9, "above the final sparsity=0.5"),
        (Cubic(0, 10, initial=0.9), "above the final sparsity=0.5"),
        (lambda step, final: final, "must take one argument"),
    ],
)
def test_the_callbacks_check_the_schedule_when_made(schedule, match):
    """The dry run at construction used Constant(): these were refused only at train
    begin, after the model and data were loaded."""
    with pytest.raises(ValueError, match=match):
        SparsifierSpec(0.5, "st3", schedule)
