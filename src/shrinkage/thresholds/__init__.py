"""The thresholding operator family: the single home of every operator shrinkage uses.

- penalties and their proxes: :func:`prox`, :func:`penalty`, :func:`threshold`,
  :func:`lam_for_threshold`, names in :data:`PENALTIES`;
- the registry, the one extension point: :class:`Penalty`, :func:`register_penalty`,
  :func:`get_penalty`, :func:`unregister_penalty`;
- activations: :func:`shifted_relu`, :func:`soft_threshold`, :func:`clipped_relu`,
  :func:`clipped_soft_threshold` and the modules :class:`ShiftedReLU`, :class:`SoftThreshold`,
  :class:`CReLU`, :class:`CST` (all :class:`Thresholding` modules);
- :func:`top_k` (keep the k largest magnitudes along a dimension);
- :func:`straight_through` (forward an operator, identity backward);
- :mod:`shrinkage.thresholds.cores`: the same operators on tensors without checks, for
  inner loops.

Convention: ``prox(x) = argmin_u 1/2 (u - x)^2 + step * G(u)``.
Torch in, torch out (device and dtype kept); numpy in, numpy out.
"""

from . import cores
from ._activations import (
    ACTIVATIONS,
    CST,
    CReLU,
    ShiftedReLU,
    SoftThreshold,
    Thresholding,
    clipped_relu,
    clipped_soft_threshold,
    shifted_relu,
    soft_threshold,
)
from ._api import describe, lam_for_threshold, penalty, prox, threshold
from ._penalties import (
    PENALTIES,
    Penalty,
    get_penalty,
    register_penalty,
    unregister_penalty,
)
from ._straight_through import straight_through
from ._topk import top_k

__all__ = [
    "PENALTIES",
    "Penalty",
    "register_penalty",
    "get_penalty",
    "unregister_penalty",
    "prox",
    "penalty",
    "threshold",
    "lam_for_threshold",
    "describe",
    "top_k",
    "ACTIVATIONS",
    "shifted_relu",
    "soft_threshold",
    "clipped_relu",
    "clipped_soft_threshold",
    "ShiftedReLU",
    "SoftThreshold",
    "CReLU",
    "CST",
    "Thresholding",
    "straight_through",
    "cores",
]
