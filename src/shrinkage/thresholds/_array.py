"""numpy in, numpy out: the operators compute in torch and hand back what they were given."""

from __future__ import annotations

import numpy as np
import torch


def as_tensor(x):
    """Return (tensor, was_numpy). Python scalars become float64 tensors; complex input is a
    TypeError (the operators are real: converting would drop the imaginary part)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"x must be a real tensor, got dtype {x.dtype}")
        if x.device.type == "meta":
            raise ValueError("x is on the 'meta' device: it holds no values to threshold")
        return x, False
    if isinstance(x, np.ndarray | np.generic | float | int):
        arr = np.asarray(x)
        if np.iscomplexobj(arr):
            raise TypeError(f"x must be a real array, got dtype {arr.dtype}")
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        return torch.from_numpy(np.ascontiguousarray(arr)), True
    raise TypeError(f"x must be a torch.Tensor or numpy array, got {type(x).__name__}")


def like(param, ref: torch.Tensor):
    """A scalar stays a Python float; an array becomes a tensor on ref's device and dtype."""
    if isinstance(param, torch.Tensor | np.ndarray):
        return torch.as_tensor(param, dtype=ref.dtype, device=ref.device)
    return float(param)


def back(y: torch.Tensor, was_numpy: bool):
    return y.detach().cpu().numpy() if was_numpy else y
