"""Sparse weights inside a PyTorch Lightning ``Trainer``: ``SparsifierCallback``.

Needs ``lightning`` (``pip install 'shrinkage[lightning]'``).

Examples
--------
>>> from shrinkage.integrations.lightning import SparsifierCallback
>>> cb = SparsifierCallback(sparsity=0.9, method="st3")   # cubic over the first half of training
>>> # trainer = lightning.Trainer(max_epochs=3, callbacks=[cb]); trainer.fit(lit_module, loader)
>>> # trainer.save_checkpoint("sparse.ckpt")    # plain: LitModule.load_from_checkpoint loads it
"""

from __future__ import annotations

import math
import warnings

import torch

from ..weights import flops
from ._common import PlainKeys, SparsifierSpec, require, weight_stats

_L = require("lightning", "lightning", "shrinkage.integrations.lightning")

__all__ = ["SparsifierCallback"]


class SparsifierCallback(_L.pytorch.Callback):
    """Make a LightningModule's Conv and Linear weights sparse while ``Trainer.fit`` runs.

    Same contract as ``shrinkage.integrations.hf.SparsifierCallback``:

    - ``setup("fit")``: builds a ``Sparsifier`` on the LightningModule
      (before Lightning restores a checkpoint and before ``configure_optimizers``; the
      Parameters are the same objects either way);
    - ``on_train_batch_end``: one ``sparsifier.step()`` per optimizer step, i.e. whenever
      ``trainer.global_step`` advanced (``accumulate_grad_batches`` respected);
    - logs ``target_sparsity`` every optimizer step and, at each epoch end, ``sparsity`` and
      the MACs: of one example (``dense_macs``, ``sparse_macs``) when the module has a float
      ``example_input_array``, else of the Linear layers per position;
    - its state (step, thresholds, masks) is the callback's state in Lightning checkpoints
      (``state_dict`` / ``load_state_dict``), and the module's ``state_dict`` keeps the plain
      keys (raw weights) while training, so ``fit(ckpt_path=...)`` resumes exactly;
    - ``on_fit_end``: squashes, so ``trainer.save_checkpoint`` then writes a plain checkpoint
      that the original LightningModule class (without this callback) loads.

    Parameters
    ----------
    sparsity, method, schedule, **kwargs :
        as for the Hugging Face callback; the default schedule is cubic over the first half
        of ``trainer.estimated_stepping_batches``.

    Raises
    ------
    ValueError
        on a bad argument, when the callback is made; when a checkpoint made under
        another schedule is restored (another ``schedule``, or the default one of another
        number of steps).
    """

    def __init__(self, sparsity: float, method: str = "st3", schedule=None, **kwargs):
        self.spec = SparsifierSpec(sparsity, method, schedule, **kwargs)
        self.sparsifier = None
        self._keys: PlainKeys | None = None
        self._pending: dict | None = None
        # (pruned layer names, fraction of zeros) when fit squashed: checked by test & co
        self._final: tuple[list[str], float] | None = None

    @property
    def state_key(self) -> str:
        # stable across processes (a schedule's repr may hold an address): sparsity and method
        return f"SparsifierCallback[sparsity={self.spec.sparsity}, method={self.spec.method!r}]"

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or (self.sparsifier is not None and not self.sparsifier._squashed):
            return
        steps = trainer.estimated_stepping_batches  # inf with max_epochs=-1 or max_time only
        total = int(steps) if math.isfinite(steps) else None
        self._check_example(pl_module)  # before the module is parametrized
        self.sparsifier = self.spec.build(pl_module, total)
        self._keys = PlainKeys(pl_module, self.sparsifier)
        if self._pending is not None:
            self.sparsifier.load_state_dict(self._pending)
            self._pending = None

    def on_train_start(self, trainer, pl_module) -> None:
        sp = self.sparsifier
        if sp is not None and sp.step_count != trainer.global_step:
            if getattr(trainer, "ckpt_path", None) is None:
                raise RuntimeError(
                    f"SparsifierCallback: training starts at global_step {trainer.global_step} "
                    "without a checkpoint: a second fit on a Trainer that has trained already "
                    "(the first fit squashed the model when it ended); fit with a new Trainer "
                    "and callback, or resume with fit(..., ckpt_path=...)"
                )
            raise RuntimeError(
                f"SparsifierCallback: training starts at global_step {trainer.global_step} but "
                f"the Sparsifier is at step {sp.step_count}: the checkpoint holds no state for "
                f"{self.state_key!r}, so pruning cannot resume (same callback arguments?)"
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sp = self.sparsifier
        if sp is None or sp._squashed:
            return
        stepped = False
        while sp.step_count < trainer.global_step:
            sp.step()
            stepped = True
        if stepped:
            pl_module.log("target_sparsity", sp.current_sparsity, on_step=True, on_epoch=False)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        sp = self.sparsifier
        if sp is None or sp._squashed:
            return
        for k, v in self.stats(pl_module).items():
            pl_module.log(k, float(v), on_step=False, on_epoch=True)

    @torch.no_grad()
    def stats(self, pl_module) -> dict[str, float]:
        """Sparsity of the pruned weights and MACs (see the class docstring)."""
        x = getattr(pl_module, "example_input_array", None)
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            rep = flops(pl_module, tuple(x.shape), pruned=self.sparsifier.layer_names)
            return {
                "sparsity": 1.0 - self.sparsifier.density(),
                "dense_macs": rep.dense_macs,
                "sparse_macs": rep.sparse_macs,
            }
        out = weight_stats(pl_module, self.sparsifier)
        out.pop("target_sparsity")
        return out

    def _check_example(self, pl_module) -> None:
        """The epoch-end MACs run ``example_input_array``'s shape through the model: one that
        does not fit fails now, not after an epoch of training."""
        x = getattr(pl_module, "example_input_array", None)
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
            return
        try:
            flops(pl_module, tuple(x.shape))
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            raise ValueError(
                f"SparsifierCallback counts MACs on example_input_array, of shape "
                f"{tuple(x.shape)}, which the model does not take: {str(e).splitlines()[0]}"
            ) from None

    def on_fit_end(self, trainer, pl_module) -> None:
        self.finish()

    def finish(self) -> None:
        """End pruning where the run stands: squash the module (what the end of ``fit``
        does), so that its ``state_dict`` holds the sparse weights. For a ``fit`` stopped by
        an exception; nothing to do once squashed or before training."""
        if self.sparsifier is None or self.sparsifier._squashed:
            return
        self._keys.remove()
        self._final = (self.sparsifier.layer_names, 1.0 - self.sparsifier.density())
        self.sparsifier.squash()

    def _check_loaded(self, trainer, pl_module) -> None:
        """After fit, ``test`` / ``validate`` / ``predict`` with ``ckpt_path`` load a
        checkpoint written during fit: its plain keys hold the raw (dense) weights, and
        Lightning restores callback states only when fitting. Say so when the module's
        pruned layers came back denser than fit left them."""
        final = self._final
        if final is None or getattr(trainer, "ckpt_path", None) is None:
            return
        names, zeros = final
        ws = [pl_module.get_submodule(n).weight for n in names]
        now = sum(int((w == 0).sum()) for w in ws) / max(1, sum(w.numel() for w in ws))
        if now < zeros - 1e-3:
            warnings.warn(
                f"SparsifierCallback: the checkpoint {trainer.ckpt_path!r} holds raw weights "
                f"written during fit ({now:.1%} zeros in the pruned layers, {zeros:.1%} when "
                "fit ended): evaluate the model fit squashed (no ckpt_path), or one saved "
                "after fit",
                UserWarning,
                stacklevel=2,
            )

    def on_test_start(self, trainer, pl_module) -> None:
        self._check_loaded(trainer, pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.training and not trainer.sanity_checking:
            self._check_loaded(trainer, pl_module)

    def on_predict_start(self, trainer, pl_module) -> None:
        self._check_loaded(trainer, pl_module)

    def state_dict(self) -> dict:
        if self.sparsifier is None or self.sparsifier._squashed:
            return {}
        return {"sparsifier": self.sparsifier.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        state = state_dict.get("sparsifier")
        if state is None:
            return
        if self.sparsifier is not None and not self.sparsifier._squashed:
            self.sparsifier.load_state_dict(state)
        else:  # restored before setup (Trainer.validate, custom loops): applied at setup
            self._pending = state

    def __repr__(self) -> str:
        return f"SparsifierCallback({self.spec!r})"
