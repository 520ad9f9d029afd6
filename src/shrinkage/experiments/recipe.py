"""One recipe pattern for every experiment: a frozen dataclass whose fields are the run's settings.

A recipe class derives from ``Recipe`` and is a ``@dataclass(frozen=True)``. Each field
holds its one default; its ``metadata`` may give ``help`` (the command-line help text),
``flag`` (the option's name when it is not ``--field-name``), ``required=True`` (the option
must be given: a path the run cannot do without) and ``cli=False`` (not on the command
line). Then:

- ``recipe.check()`` validates every field (naming the field, the value and what is allowed)
  and returns the recipe;
- ``recipe.to_dict()`` is what ``config.json`` holds;
- ``Recipe.add_arguments(parser)`` generates the command-line options from the fields, and
  ``Recipe.from_args(args)`` builds the recipe back from the parsed options, so a default
  exists in one place.

Examples
--------
>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class Toy(Recipe):
...     epochs: int = field(default=3, metadata={"help": "passes over the data"})
...     fast: bool = False
>>> import argparse
>>> p = argparse.ArgumentParser()
>>> Toy.add_arguments(p)
>>> Toy.from_args(p.parse_args(["--epochs", "5"]))
Toy(epochs=5, fast=False)
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import asdict, fields
from pathlib import Path

from .._io import read_json

__all__ = ["Recipe", "comma_list"]


def option(text: str, **extra) -> dict:
    """The metadata of a recipe field: its ``--help`` text, and extras such as ``flag`` (the
    option's name when it is not the field's) that ``Recipe.add_arguments`` reads.

    Examples
    --------
    >>> option("passes over the data", flag="--epochs")
    {'help': 'passes over the data', 'flag': '--epochs'}
    """
    return {"help": text, **extra}


def comma_list(kind):
    """An argparse type: ``"a,b"`` -> a tuple of ``kind`` (blank items dropped; at least one
    value)."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(t.strip()) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values, got {text!r}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(
                f"expected at least one {kind.__name__} value, got {text!r}"
            )
        return values

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def _parser_type(hint):
    """(argparse type, is_flag) for a field's type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _parser_type(args[0])
    if origin is tuple:
        return comma_list(args[0]), False
    if hint is bool:
        return None, True
    if hint in (int, float, str):
        return hint, False
    return None, False  # no command-line form (dicts, tensors, ...)


class Recipe:
    """Base of the experiments' recipes (see the module docstring)."""

    def check(self):
        """Validate the fields; subclasses extend this. Returns the recipe."""
        return self

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (what ``config.json`` holds)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def replace(self, **changes):
        """A copy with some fields changed (recipes are frozen)."""
        return dataclasses.replace(self, **changes)

    def refuse_other_run(self, out, ignore=("out", "progress", "threads")) -> None:
        """ValueError when the folder ``out`` holds the ``config.json`` of a run of another
        recipe: another command's (fields this recipe does not have) or this one's with
        other settings (fields in ``ignore`` aside): writing this run there would replace
        that run's results. A run of the same recipe may be run again; fields a saved
        config lacks (an older version) read as their defaults."""
        path = Path(out) / "config.json"
        if not path.is_file():
            return
        saved = read_json(path, "remove the run folder")
        mine = self.to_dict()
        if not isinstance(saved, dict) or set(saved) - set(mine):
            other = sorted(set(saved) - set(mine)) if isinstance(saved, dict) else []
            raise ValueError(
                f"{out} holds a run of another command ({', '.join(other[:4]) or 'not a recipe'}"
                f" in its config.json); choose another output folder or remove that run"
            )
        full = {**type(self)().to_dict(), **saved}
        diff = [k for k in mine if k not in ignore and mine[k] != full.get(k)]
        if diff:
            shown = ", ".join(f"{k} {mine[k]!r} here, {full.get(k)!r} there" for k in diff[:6])
            raise ValueError(
                f"{out} holds a run of another recipe ({shown}); choose another output "
                "folder or remove that run"
            )

    @classmethod
    def add_arguments(cls, parser, *, skip=(), defaults=None) -> None:
        """One option per field (except ``skip`` and fields with ``cli=False``); ``defaults``
        overrides a field's default on this command line only (e.g. an output folder)."""
        hints = typing.get_type_hints(cls)
        defaults = defaults or {}
        for f in fields(cls):
            if f.name in skip or not f.metadata.get("cli", True):
                continue
            kind, is_flag = _parser_type(hints[f.name])
            default = defaults.get(f.name, _default(f))
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            text = f.metadata.get("help", "")
            if is_flag:
                action = "store_false" if default else "store_true"
                parser.add_argument(flag, dest=f.name, action=action, help=text)
            elif kind is not None and f.metadata.get("required"):
                parser.add_argument(flag, dest=f.name, type=kind, required=True, help=text)
            elif kind is not None:
                shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
                text = f"{text} (default {shown})" if text else f"(default {shown})"
                parser.add_argument(flag, dest=f.name, type=kind, default=default, help=text)

    @classmethod
    def from_args(cls, args, *, skip=(), **overrides):
        """The recipe from parsed options (fields in ``skip`` or not on the command line keep
        their defaults); ``overrides`` win."""
        given = {
            f.name: getattr(args, f.name)
            for f in fields(cls)
            if f.name not in skip and hasattr(args, f.name)
        }
        return cls(**{**given, **overrides})


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None
