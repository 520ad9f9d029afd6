"""A module's numeric settings carried in its state_dict.

torch saves a module's parameters and buffers; a setting held as a plain attribute (a
clipping level, an input scale) is not saved, so a state loaded into a module built with
another setting reported every key matched and computed something else. ``SettingsState``
keeps each setting a subclass names in ``_state_settings`` in a buffer ``<name>_saved`` as
well (the float64 bits in an int64: dtype moves such as ``.half()`` leave integer buffers
alone, and tracing and ONNX export see an ordinary buffer), and loading a state sets the
attribute from it. A state saved before the settings were kept (no such key) still loads,
with the module's own settings.
"""

from __future__ import annotations

import math

import torch


def _bits(value: float) -> torch.Tensor:
    return torch.tensor([float(value)], dtype=torch.float64).view(torch.int64)


def _value(bits: torch.Tensor) -> float:
    return float(bits.detach().cpu().reshape(1).view(torch.float64))


class SettingsState:
    """Mixin for ``torch.nn.Module`` subclasses (put it first among the bases); call
    ``_keep_settings()`` at the end of ``__init__``."""

    _state_settings: tuple[str, ...] = ()

    def _keep_settings(self) -> None:
        for k in self._state_settings:
            self.register_buffer(f"{k}_saved", _bits(getattr(self, k)))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
        for k in self._state_settings:
            key = prefix + f"{k}_saved"
            if key in missing_keys:  # saved before the settings were kept: keep ours
                missing_keys.remove(key)
            if key not in state_dict:
                continue
            v = _value(getattr(self, f"{k}_saved"))
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"{type(self).__name__}'s saved {k} must be > 0, got {v!r}")
            setattr(self, k, v)
