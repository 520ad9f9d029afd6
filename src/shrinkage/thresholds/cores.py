"""The tensor cores of the family, without argument checks: for the pillars' inner loops.

Each is the single definition behind a checked public function (``soft`` behind
``prox("l1")`` and ``soft_threshold``, the others behind the
activations of the same name). Tensors in, tensors out; ``t``, ``tau`` and ``m`` are floats or
tensors broadcastable to ``x``, and are not validated here.

Examples
--------
>>> import torch
>>> soft(torch.tensor([-2.0, 0.5, 3.0]), 1.0)
tensor([-1.,  0.,  2.])
"""

from ._activations import _clipped_relu as clipped_relu
from ._activations import _clipped_soft_threshold as clipped_soft_threshold
from ._activations import _shifted_relu as shifted_relu
from ._penalties import _soft as soft

__all__ = ["soft", "shifted_relu", "clipped_relu", "clipped_soft_threshold"]
