"""Meet users where they train: Hugging Face ``Trainer``, PyTorch Lightning, ONNX export.

Each integration is its own module and needs its optional extra; importing ``shrinkage``
or this package imports none of them, and a missing extra is a one-line ImportError naming
the ``pip install`` to run:

- ``shrinkage.integrations.hf`` -- ``SparsifierCallback``, a ``transformers.TrainerCallback``
  (``pip install 'shrinkage[hf]'``);
- ``shrinkage.integrations.lightning`` -- ``SparsifierCallback``, a ``lightning`` Callback
  (``pip install 'shrinkage[lightning]'``);
- ``shrinkage.integrations.onnx`` -- ``export_onnx`` for squashed models, checked with
  ONNX Runtime (``pip install 'shrinkage[onnx]'``).

Both callbacks share one contract: the Sparsifier is built on the model when training
starts, stepped once per optimizer step (gradient accumulation respected), its state saved
with the framework's checkpoints and restored on resume, and the model squashed when
training ends, so the framework's own save writes a plain checkpoint that the original
class loads.
"""

__all__ = ["hf", "lightning", "onnx"]
