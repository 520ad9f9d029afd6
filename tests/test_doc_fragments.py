"""Shared docstring fragments (shrinkage._doc): every marker is filled at import, a wrong
name fails loudly, and the filled text is what help() and the API pages show."""

import importlib
import inspect
import pkgutil

import pytest

import shrinkage
from shrinkage._doc import fill, sections

_OPTIONAL = ("shrinkage.integrations",)  # they import the optional extras


def _documented():
    """(qualified name, docstring) of every function, class and method defined in shrinkage."""
    for info in pkgutil.walk_packages(shrinkage.__path__, "shrinkage."):
        # _doc and the _docs modules describe the markers themselves
        if info.name.startswith(_OPTIONAL) or info.name.endswith(("._docs", "._doc")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != info.name:
                continue
            yield f"{info.name}.{name}", getattr(obj, "__doc__", None)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    target = getattr(member, "__func__", member)
                    if callable(target):
                        yield f"{info.name}.{name}.{attr}", getattr(target, "__doc__", None)


def test_no_docstring_keeps_a_marker():
    seen = dict(_documented())
    assert len(seen) > 300  # the walk reached the package
    unfilled = [n for n, doc in seen.items() if isinstance(doc, str) and "%(" in doc]
    assert unfilled == []


def test_a_fragment_is_indented_like_its_marker_and_may_name_others():
    parts = {"x": "x : float\n    The input.", "both": sections(parameters="x")}

    @fill(**parts)
    class Model:
        """A model.

        %(both)s
        """

        @fill(**parts)
        @classmethod
        def build(cls, x):
            """Build one.

            Parameters
            ----------
            %(x)s
            """

    filled = "\n        Parameters\n        ----------\n        x : float\n            The input."
    assert filled in Model.__doc__
    assert "\n            x : float\n                The input." in Model.build.__doc__


def test_a_marker_without_a_fragment_fails_at_import():
    with pytest.raises(KeyError, match="typo"):

        @fill(x="x : int")
        def f(x):
            """Parameters
            ----------
            %(x, typo)s
            """


def test_sections_come_in_numpydoc_order_and_refuse_unknown_ones():
    text = sections(raises="e", parameters="p", returns="r")
    assert [line for line in text.splitlines() if line.istitle()] == [
        "Parameters",
        "Returns",
        "Raises",
    ]
    with pytest.raises(ValueError, match="examples"):
        sections(examples="e")
