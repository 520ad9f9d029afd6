"""Sparse weights inside a Hugging Face ``Trainer``: ``SparsifierCallback``.

Needs ``transformers`` (``pip install 'shrinkage[hf]'``).

Examples
--------
>>> from shrinkage.integrations.hf import SparsifierCallback
>>> cb = SparsifierCallback(sparsity=0.9, method="st3")   # cubic over the first half of training
>>> # trainer = transformers.Trainer(model, args, train_dataset=ds, callbacks=[cb])
>>> # trainer.train(); trainer.save_model("out")   # a plain checkpoint: from_pretrained loads it
"""

from __future__ import annotations

from pathlib import Path

from .._io import save_torch
from ._common import SIDECAR, PlainKeys, SparsifierSpec, require, weight_stats, weights_crc32

transformers = require("transformers", "hf", "shrinkage.integrations.hf")

__all__ = ["SparsifierCallback", "SIDECAR"]


class SparsifierCallback(transformers.TrainerCallback):
    """Make a model's Linear (and Conv) weights sparse while a ``transformers.Trainer`` trains.

    - ``on_train_begin``: builds a ``Sparsifier`` on the model (the
      same Parameters, so the Trainer's optimizer keeps working); when the Trainer resumes
      from a checkpoint, restores the Sparsifier's state from that checkpoint folder;
    - ``on_step_end`` (once per optimizer step, so after ``gradient_accumulation_steps``
      micro-batches): ``sparsifier.step()``;
    - ``on_log``: adds ``sparsity``, ``target_sparsity`` and the MACs of the Linear layers per
      token (``dense_macs_per_token``, ``sparse_macs_per_token``) to the Trainer's logs (the
      progress output and ``state.log_history``; report_to integrations listed before this
      callback log before it runs and do not see them);
    - ``on_save``: writes the Sparsifier's state (step, thresholds, masks) as
      ``shrinkage_sparsifier.pt`` in the checkpoint folder. While training, the model's
      ``state_dict`` keeps the plain keys (raw weights), so the Trainer's checkpoints load
      into the plain model on resume;
    - ``on_train_end``: squashes (the best checkpoint's state first with
      ``load_best_model_at_end``), so ``trainer.save_model`` / ``save_pretrained`` write a
      plain checkpoint that ``from_pretrained`` of the original class loads.

    A run that stops before its end (an exception, Ctrl-C) never reaches ``on_train_end``:
    the model in memory computes the sparse function, but its ``state_dict`` (and so
    ``save_pretrained``, like the Trainer's ``checkpoint-N`` folders) still holds the raw,
    dense weights, what resuming needs. Resume it, or call ``finish()`` to squash it where it
    stands before saving it as a sparse model.

    Parameters
    ----------
    sparsity : final fraction of pruned weights, in [0, 1).
    method : a Sparsifier method (``"st3"``, ``"gmp"``, ...; see
        ``shrinkage.weights.METHODS``).
    schedule : in optimizer steps; default ``Cubic(0, max_steps // 2)`` (the target reached
        half-way, then held while thresholds keep being recomputed).
    **kwargs : ``scope``, ``include``, ``exclude``, ``penalty``, ``penalty_params``,
        ``rescale``, ``min_density``, ``method_params``, passed to the Sparsifier and checked
        here, when the callback is made (rigl: schedule
        ``Constant()`` and ``update_end`` at 75 % of ``max_steps`` unless given; str is
        refused: its thresholds would miss the Trainer's optimizer).

    Raises
    ------
    ValueError
        on a bad argument, here, before training starts.
    RuntimeError
        when the Trainer resumes from a checkpoint that holds no Sparsifier state (pruning
        would silently restart).
    ValueError
        when it resumes under another schedule than the checkpoint's (another ``schedule``,
        or the default one of another ``max_steps``), at train begin.

    Notes
    -----
    GPT-2's attention / MLP projections are ``transformers.pytorch_utils.Conv1D``, not
    ``nn.Linear``: they stay dense; its ``lm_head`` (tied to the token embedding) is pruned
    and the embedding reads the same sparse weight.
    """

    def __init__(self, sparsity: float, method: str = "st3", schedule=None, **kwargs):
        self.spec = SparsifierSpec(sparsity, method, schedule, **kwargs)
        if self.spec.method == "str":
            raise ValueError(
                "method 'str' learns new threshold parameters, but the Trainer makes its "
                "optimizer before on_train_begin builds the Sparsifier, so they would never "
                "learn; use another method here, or STR in your own loop / with Lightning"
            )
        self.sparsifier = None
        self._keys: PlainKeys | None = None
        self._model = None

    # -- the Trainer's events ----------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise RuntimeError("SparsifierCallback: the Trainer passed no model to on_train_begin")
        if self.sparsifier is None or self._model is not model or self.sparsifier._squashed:
            self._detach()
            self.sparsifier = self.spec.build(model, state.max_steps)
            self._keys = PlainKeys(model, self.sparsifier)
            self._model = model
        if state.global_step > 0:  # resuming: the Trainer loaded weights and its state
            self._load(*self._resume_dir(args, state), state.global_step)
        elif self.sparsifier.step_count:
            raise RuntimeError(
                "SparsifierCallback: a new training run on a model this callback is still "
                "sparsifying; let the first run finish (it squashes) or use a new callback"
            )

    def on_step_end(self, args, state, control, **kwargs):
        sp = self.sparsifier
        sp.step()
        if sp.step_count != state.global_step:
            raise RuntimeError(
                f"SparsifierCallback: sparsifier step {sp.step_count} != Trainer global_step "
                f"{state.global_step} (was the callback added after training started?)"
            )

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if self.sparsifier is None or self.sparsifier._squashed or logs is None:
            return
        stats = weight_stats(self._model, self.sparsifier)
        logs.update(stats)
        last = state.log_history[-1] if state.log_history else None
        if last is not None and last.get("step") == state.global_step:
            last.update(stats)

    def on_save(self, args, state, control, **kwargs):
        if self.sparsifier is None or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        save_torch(folder / SIDECAR, self.state_dict())

    def on_train_end(self, args, state, control, **kwargs):
        if self.sparsifier is None or self.sparsifier._squashed:
            return
        best = state.best_model_checkpoint
        if args.load_best_model_at_end and best and Path(best, SIDECAR).is_file():
            # the Trainer loaded the best raw weights; their thresholds and masks go with them
            self._load(Path(best), self._read(Path(best)), None)
        self.finish()

    def finish(self) -> None:
        """End pruning where the run stands: squash the model (what ``on_train_end`` does),
        so that its ``state_dict`` and ``save_pretrained`` hold the sparse weights. For a run
        stopped before its end; nothing to do once the model is squashed or before training.

        Examples
        --------
        >>> cb = SparsifierCallback(0.5)
        >>> cb.finish()  # before training: nothing to squash
        >>> cb.sparsifier is None
        True
        """
        if self.sparsifier is None or self.sparsifier._squashed:
            return
        self._detach()
        self.sparsifier.squash()

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "sparsifier": self.sparsifier.state_dict(),
            "spec": repr(self.spec),
            # which weights this state goes with: a resume checks it (see _resume_dir)
            "weights_crc32": weights_crc32(self.sparsifier),
        }

    @staticmethod
    def _read(folder: Path) -> dict:
        import torch

        return torch.load(folder / SIDECAR, map_location="cpu", weights_only=True)

    def _resume_dir(self, args, state) -> tuple[Path, dict]:
        """The checkpoint folder resumed from and its sidecar's state."""
        wanted = getattr(args, "resume_from_checkpoint", None)
        candidates = [Path(wanted)] if isinstance(wanted, str) else []
        candidates.append(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        mine, other = weights_crc32(self.sparsifier), []
        for c in candidates:
            if (c / SIDECAR).is_file():
                saved = self._read(c)
                if saved.get("weights_crc32", mine) == mine:
                    return c, saved
                other.append(c)
        if other:
            # trainer.train(resume_from_checkpoint=PATH) does not tell callbacks PATH: the
            # output folder's checkpoint of this step may be another run's
            raise RuntimeError(
                f"SparsifierCallback: {str(other[0] / SIDECAR)!r} was saved with other weights "
                "than those the Trainer resumed from (another run's checkpoint); set "
                "TrainingArguments.resume_from_checkpoint to the folder resumed from"
            )
        raise RuntimeError(
            f"SparsifierCallback: resuming at step {state.global_step} but no {SIDECAR} in "
            + " or ".join(repr(str(c)) for c in candidates)
            + "; pruning cannot resume (set TrainingArguments.resume_from_checkpoint to the "
            "checkpoint folder)"
        )

    def _load(self, folder: Path, state: dict, step: int | None) -> None:
        self.sparsifier.load_state_dict(state["sparsifier"])
        if step is not None and self.sparsifier.step_count != step:
            raise RuntimeError(
                f"SparsifierCallback: {folder / SIDECAR} is at step "
                f"{self.sparsifier.step_count}, the Trainer resumes at step {step}"
            )

    def _detach(self) -> None:
        if self._keys is not None:
            self._keys.remove()
        self._keys = None

    def __repr__(self) -> str:
        return f"SparsifierCallback({self.spec!r})"
