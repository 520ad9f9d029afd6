"""shrinkage: one family of thresholding operators, applied to weights, codes and activations.

Subpackages:

- ``shrinkage.thresholds`` -- the operators (prox, penalties, activations, straight-through)
- ``shrinkage.weights`` -- sparse training (ST-3 and relatives), FLOPs, squash, export
- ``shrinkage.codes`` -- sparse coding and dictionary learning beyond l1, V1 analyses
- ``shrinkage.activations`` -- Gaussian-process maps, edge of chaos, safe clipping
- ``shrinkage.data`` -- MNIST, natural images, patches
- ``shrinkage.models`` -- LeNets, small ResNet, deep MLPs and CNNs
- ``shrinkage.experiments`` -- the MNIST and natural-image runs (one training loop, recipes)
- ``shrinkage.integrations`` -- Hugging Face and Lightning callbacks, ONNX export (each
  module needs its optional extra; importing ``shrinkage`` imports none of them)
- ``shrinkage.report``, ``shrinkage.cli`` -- the cross-pillar report and the command

Layers (checked by ``lint-imports``): thresholds <- weights, codes, activations, data, models
(never importing each other) <- experiments, integrations (independent of each other) <- report
<- cli.
"""

from importlib import import_module

__version__ = "0.1.0"
__all__ = [
    "thresholds",
    "weights",
    "codes",
    "activations",
    "data",
    "models",
    "experiments",
    "integrations",
    "__version__",
]


def __getattr__(name):
    # Subpackages load on first use so `import shrinkage` stays light.
    if name in __all__ and name != "__version__":
        return import_module(f"shrinkage.{name}")
    raise AttributeError(f"module 'shrinkage' has no attribute {name!r}")
