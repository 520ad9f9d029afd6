"""A griffe extension for ``make docs``: docstrings built from shared fragments are shown filled.

Some docstrings name a fragment on a line ``%(name)s`` that ``shrinkage._doc.fill`` replaces at
import (one text for a parameter that several functions take). The API pages are read from the
source, so for those objects this extension takes the docstring of the imported object, the
text that ``help()`` shows.
"""

from __future__ import annotations

import importlib
import inspect

import griffe

from shrinkage._doc import _MARKER  # the line a fragment stands on


def _runtime(path: str):
    """The object at a dotted ``path``: the longest importable module, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
        return obj
    return None


class FillSharedFragments(griffe.Extension):
    """Replace a docstring holding ``%(name)s`` lines with its filled runtime text."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        doc = obj.docstring
        # shrinkage._doc shows the markers themselves (its examples), it fills nothing
        if doc is None or obj.path.startswith("shrinkage._doc.") or not _MARKER.search(doc.value):
            return
        runtime = _runtime(obj.path)
        filled = getattr(getattr(runtime, "__func__", runtime), "__doc__", None)
        if not filled or _MARKER.search(filled):
            raise RuntimeError(f"{obj.path}: its docstring fragments were not filled at import")
        doc.value = inspect.cleandoc(filled)
