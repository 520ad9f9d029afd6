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


def test_a_schedule_that_ends_after_training_warns():
    """Cubic(0, 100) on 8 steps ended the run at 0.2 when 0.9 was asked, silently."""
    import warnings

    model = nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 2))
    with pytest.warns(UserWarning, match=r"reaches sparsity 0.19\d* at the last training step"):
        SparsifierSpec(0.9, schedule=Cubic(0, 100)).build(model, total_steps=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparsifierSpec(0.9, schedule=Cubic(0, 8)).build(
            nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 2)), total_steps=8
        )


def test_lightning_without_a_training_length_needs_a_schedule(tmp_path):
    """max_epochs=-1 (or max_time only) made the default schedule fail with a bare
    OverflowError (infinity to int)."""
    L = pytest.importorskip("lightning")
    import torch

    from shrinkage.integrations.lightning import SparsifierCallback

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)))
    trainer = L.Trainer(
        max_epochs=-1, max_steps=-1, callbacks=[SparsifierCallback(0.5)], logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        accelerator="cpu", default_root_dir=str(tmp_path),
    )  # fmt: skip
    with pytest.raises(ValueError, match="default schedule .* needs the number of training"):
        trainer.fit(Lit(), data)
