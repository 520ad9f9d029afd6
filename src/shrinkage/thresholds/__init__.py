"""The thresholding operator family: the single home of every operator shrinkage uses.

- penalties and their proxes: ``prox``, ``penalty``, ``threshold``,
  ``lam_for_threshold``, names in ``PENALTIES``;
- the registry, the one extension point: ``Penalty``, ``register_penalty``,
  ``get_penalty``, ``unregister_penalty``;
- activations: ``shifted_relu``, ``soft_threshold``, ``clipped_relu``,
  ``clipped_soft_threshold`` and the modules ``ShiftedReLU``, ``SoftThreshold``,
  ``CReLU``, ``CST`` (all ``Thresholding`` modules);
- ``top_k`` (keep the k largest magnitudes along a dimension);
- ``straight_through`` (forward an operator, identity backward);
- ``shrinkage.thresholds.cores``: the same operators on tensors without checks, for
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
