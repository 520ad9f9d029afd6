"""Shared docstring fragments: one text for a parameter that several public functions take.

A docstring names a fragment on a line of its own, ``%(name)s``; :func:`fill` puts the
fragment's text there, indented like the marker. The parameter is then described once, and a
correction reaches every function that takes it (the pattern of ``scipy``'s ``doccer`` and
matplotlib's ``interpd``). The API site reads the filled docstrings (mkdocstrings with
``force_inspection``), and so do ``help()`` and the doctests.
"""

from __future__ import annotations

import re
import textwrap

_MARKER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<names>\w+(?:, *\w+)*)\)s[ \t]*$", re.MULTILINE)


def fill(**parts: str):
    """Decorator: replace each line ``%(name)s`` of the docstring with ``parts[name]``.

    A line ``%(a, b)s`` stands for the fragments ``a`` then ``b``; a fragment may itself hold
    such lines.

    A fragment is dedented (``textwrap.dedent``, outer blank lines dropped) and every line of
    it indented like its marker. A marker without a fragment raises ``KeyError`` at import,
    so a typo never reaches a rendered page.

    Examples
    --------
    >>> @fill(x="x : float\\n    The input.")
    ... def f(x):
    ...     '''Twice x.
    ...
    ...     Parameters
    ...     ----------
    ...     %(x)s
    ...     '''
    >>> print(f.__doc__.splitlines()[4])
        x : float
    """

    def substitute(match: re.Match) -> str:
        out = []
        for name in re.split(r", *", match["names"]):
            if name not in parts:
                raise KeyError(f"docstring fragment %({name})s is not among {sorted(parts)}")
            # a fragment may name others (a whole set of sections built from parameters)
            text = _MARKER.sub(substitute, textwrap.dedent(parts[name]).strip("\n"))
            out += [match["indent"] + line if line else line for line in text.split("\n")]
        return "\n".join(out)

    def decorate(obj):
        # a classmethod or staticmethod: its function's docstring is the one help() shows
        for target in {id(t): t for t in (obj, getattr(obj, "__func__", obj))}.values():
            if target.__doc__:
                target.__doc__ = _MARKER.sub(substitute, target.__doc__)
        return obj

    return decorate


_HEADINGS = {
    "parameters": "Parameters",
    "attributes": "Attributes",
    "returns": "Returns",
    "raises": "Raises",
}


def sections(**names: str) -> str:
    """A fragment made of whole numpydoc sections, each from fragments named in ``names``.

    ``sections(parameters="x, tau", raises="bad_tau")`` is the text of a Parameters section
    holding the fragments ``x`` and ``tau``, then a Raises section holding ``bad_tau``
    (sections in numpydoc's order, whatever the order of the keywords).

    Examples
    --------
    >>> print(sections(raises="bad", parameters="x"))
    Parameters
    ----------
    %(x)s
    <BLANKLINE>
    Raises
    ------
    %(bad)s
    """
    unknown = sorted(set(names) - set(_HEADINGS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; known: {sorted(_HEADINGS)}")
    return "\n\n".join(
        f"{title}\n{'-' * len(title)}\n%({names[key]})s"
        for key, title in _HEADINGS.items()
        if key in names
    )
