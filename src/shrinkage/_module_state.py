"""A module's numeric settings carried in its state_dict.

torch saves a module's parameters and buffers; a setting held as a plain attribute (a
clipping level, an input scale) is not saved, so a state loaded into a module built with
another setting reported every key matched and computed something else. ``SettingsState``
puts the settings a subclass names in ``_state_settings`` into the state_dict as torch's
``_extra_state`` (with the class name), so that loading restores them and a state saved by
another class is refused. A state saved before the settings were kept (no ``_extra_state``
key) still loads, with the module's own settings.
"""

from __future__ import annotations

import math


class SettingsState:
    """Mixin for ``torch.nn.Module`` subclasses (put it first among the bases)."""

    _state_settings: tuple[str, ...] = ()

    def get_extra_state(self) -> dict:
        return {"class": type(self).__name__, **{k: getattr(self, k) for k in self._state_settings}}

    def set_extra_state(self, state) -> None:
        name = type(self).__name__
        if not isinstance(state, dict) or state.get("class") != name:
            saved = state.get("class") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"a state saved by {saved!r} does not load into a {name}")
        values = {}
        for k in self._state_settings:
            v = state.get(k)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v <= 0
            ):
                raise ValueError(f"{name}'s saved {k} must be a finite number > 0, got {v!r}")
            values[k] = float(v)
        for k, v in values.items():
            setattr(self, k, v)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
        key = prefix + "_extra_state"
        if key in missing_keys:  # saved before the settings were kept
            missing_keys.remove(key)
