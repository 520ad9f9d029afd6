"""SparsifierCallback in a lightning.Trainer: LeNet-5 on (a slice of) MNIST."""

import pytest
import torch
import torch.nn.functional as F

L = pytest.importorskip("lightning")

from shrinkage.data import mnist  # noqa: E402
from shrinkage.experiments.loop import num_threads  # noqa: E402
from shrinkage.integrations.lightning import SparsifierCallback  # noqa: E402
from shrinkage.models import lenet5  # noqa: E402
from shrinkage.weights import Cubic  # noqa: E402


class LitLeNet5(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = lenet5()
        self.example_input_array = torch.zeros(1, 1, 28, 28)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def _loader():
    x, y = mnist("train")
    ds = torch.utils.data.TensorDataset(x[:256], y[:256])
    return torch.utils.data.DataLoader(ds, batch_size=32, shuffle=False)


def _fit(out, ckpt_path=None, callback=None):
    torch.manual_seed(0)
    lit = LitLeNet5()
    cb = callback or SparsifierCallback(0.9, method="st3", schedule=Cubic(0, 6))
    saver = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=out, filename="{epoch}", every_n_epochs=1, save_top_k=-1
    )
    trainer = L.Trainer(
        max_epochs=2,
        accumulate_grad_batches=2,
        accelerator="cpu",
        devices=1,
        callbacks=[cb, saver],
        logger=L.pytorch.loggers.CSVLogger(f"{out}_logs", name="logs"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    # One thread in the module fixture and in the tests alike (the autouse one-thread fixture
    # does not reach module-scoped ones): a bitwise resume needs the same float reductions.
    with num_threads(1):
        trainer.fit(lit, _loader(), ckpt_path=ckpt_path)
    return trainer, lit, cb


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lit")
    return (out, *_fit(out / "a"))


def test_steps_once_per_optimizer_step_reaches_the_sparsity_and_logs(run):
    _, trainer, lit, cb = run
    sp = cb.sparsifier
    assert trainer.global_step == 8  # 2 epochs x 8 batches / accumulate 2
    assert sp.step_count == 8
    assert not torch.nn.utils.parametrize.is_parametrized(lit)  # squashed at fit end
    ws = [lit.get_submodule(n).weight for n in sp.layer_names]
    n = sum(w.numel() for w in ws)
    assert sum(int((w == 0).sum()) for w in ws) == int(0.9 * n)
    logged = trainer.logged_metrics
    assert float(logged["sparsity"]) == pytest.approx(int(0.9 * n) / n, abs=1e-6)
    assert float(logged["target_sparsity"]) == pytest.approx(0.9)
    assert float(logged["dense_macs"]) == 2_293_000  # LeNet-5 (Caffe): 2.29 M MACs
    assert float(logged["sparse_macs"]) < 0.5 * float(logged["dense_macs"])


def test_the_checkpoint_holds_plain_keys_and_the_sparsifier_state(run):
    out = run[0]
    ckpt = torch.load(out / "a" / "epoch=0.ckpt", weights_only=False)
    assert "net.0.weight" in ckpt["state_dict"]
    assert not any("parametrizations" in k for k in ckpt["state_dict"])
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("SparsifierCallback")]
    assert state["sparsifier"]["step"] == 4


def test_resume_from_a_lightning_checkpoint_is_bitwise(run):
    out, _, lit, _ = run
    _, resumed, cb = _fit(out / "b", ckpt_path=str(out / "a" / "epoch=0.ckpt"))
    assert cb.sparsifier.step_count == 8
    a, b = lit.state_dict(), resumed.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_saved_after_fit_the_plain_module_class_loads_it(run, tmp_path):
    _, trainer, lit, _ = run
    trainer.save_checkpoint(tmp_path / "final.ckpt")
    again = LitLeNet5.load_from_checkpoint(tmp_path / "final.ckpt").eval()
    x = mnist("test")[0][:16]
    with torch.no_grad():
        assert torch.equal(again(x), lit.eval()(x))
    plain = lenet5()
    plain.load_state_dict(lit.net.state_dict())


def test_resuming_under_another_schedule_is_refused(run):
    """The callback's state records the schedule: a resume with another one stops, naming
    the first step where the two differ."""
    out = run[0]
    cb = SparsifierCallback(0.9, method="st3", schedule=Cubic(0, 12))
    with pytest.raises(ValueError, match="at step 1, this Sparsifier's schedule gives"):
        _fit(out / "e", ckpt_path=str(out / "a" / "epoch=0.ckpt"), callback=cb)


def test_resuming_from_a_checkpoint_without_sparsifier_state_is_refused(run):
    out = run[0]
    ckpt = torch.load(out / "a" / "epoch=0.ckpt", weights_only=False)
    ckpt["callbacks"] = {k: v for k, v in ckpt["callbacks"].items() if "Sparsifier" not in k}
    torch.save(ckpt, out / "stripped.ckpt")
    with pytest.raises(RuntimeError, match="pruning cannot resume"):
        _fit(out / "c", ckpt_path=str(out / "stripped.ckpt"))


def test_a_second_fit_on_the_same_trainer_says_so(run, tmp_path):
    """The first fit squashed the model; a second fit on its Trainer once blamed a checkpoint
    that did not exist."""
    _out, trainer, lit, _cb = run
    trainer.fit_loop.max_epochs = 3
    with num_threads(1), pytest.raises(RuntimeError, match="second fit on a Trainer"):
        trainer.fit(lit, _loader())


def test_str_resumes_bitwise_from_a_lightning_checkpoint(tmp_path):
    """The plain checkpoint dropped STR's learned threshold and its shift: the resume failed
    on missing keys, and once loaded it went on from the wrong shift."""

    def cb():
        return SparsifierCallback(0.8, method="str", schedule=Cubic(0, 6))

    _, whole, _ = _fit(tmp_path / "a", callback=cb())
    _, resumed, c = _fit(
        tmp_path / "b", ckpt_path=str(tmp_path / "a" / "epoch=0.ckpt"), callback=cb()
    )
    assert c.sparsifier.step_count == 8
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


class _LitWithTest(LitLeNet5):
    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", F.cross_entropy(self(x), y))


def test_testing_a_fit_checkpoint_after_fit_warns_that_it_is_dense(tmp_path):
    """trainer.test(ckpt_path=...) after fit loads a checkpoint written during fit: its plain
    keys hold raw dense weights, and Lightning restores no callback state outside fit, so
    the squashed module was tested dense (0 % zeros), silently."""
    torch.manual_seed(0)
    lit = _LitWithTest()
    cb = SparsifierCallback(0.9, method="st3", schedule=Cubic(0, 6))
    saver = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, filename="{epoch}")
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, callbacks=[cb, saver], logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(lit, _loader())
    with pytest.warns(UserWarning, match=r"holds raw weights written during fit \(0.0% zeros"):
        trainer.test(lit, _loader(), ckpt_path=str(tmp_path / "epoch=0.ckpt"), verbose=False)


def test_a_bad_example_input_fails_before_training_and_finish_squashes(tmp_path):
    """An example_input_array the model does not take failed at the first epoch end, after
    an epoch of training, the module left parametrized; a fit stopped by an exception had
    no finish() (its checkpoints then held the raw dense weights)."""

    class Bad(LitLeNet5):
        def __init__(self):
            super().__init__()
            self.example_input_array = torch.zeros(1, 7)

    def trainer(cb):
        return L.Trainer(
            max_epochs=1, accelerator="cpu", devices=1, callbacks=[cb], logger=False,
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        )  # fmt: skip

    lit = Bad()
    with pytest.raises(ValueError, match=r"example_input_array, of shape \(1, 7\)"):
        trainer(SparsifierCallback(0.9, schedule=Cubic(0, 4))).fit(lit, _loader())
    assert not any(hasattr(m, "parametrizations") for m in lit.modules())

    class Boom(LitLeNet5):
        def training_step(self, batch, batch_idx):
            if batch_idx == 3:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    lit, cb = Boom(), SparsifierCallback(0.9, schedule=Cubic(0, 2))
    with pytest.raises(RuntimeError, match="boom"):
        trainer(cb).fit(lit, _loader())
    assert cb.sparsifier.step_count == 3 and not cb.sparsifier._squashed
    cb.finish()
    names = cb.sparsifier.layer_names
    ws = [lit.get_submodule(n).weight for n in names]
    zeros = sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)
    assert zeros == pytest.approx(0.9, abs=1e-3)
    assert "net.0.weight" in lit.state_dict()  # plain keys, the sparse weights
    cb.finish()  # once squashed: nothing to do
