"""The shape of the source: no function in ``src/shrinkage`` runs past 60 code lines (issue 11).

A function's code lines are the lines of its body (nested functions included) that are
neither blank, nor a comment, nor its docstring. A longer function is split into named
helpers, each of which can be read (and tested) on its own.
"""

import ast
from pathlib import Path

MAX_CODE_LINES = 60
SRC = Path(__file__).resolve().parents[1] / "src" / "shrinkage"

# Functions allowed past the limit for now, with the reason; each entry must name a function
# that exists (the list only shrinks).
PENDING: dict[str, str] = {}


def _docstring_lines(fn) -> set[int]:
    first = fn.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return set(range(first.lineno, first.end_lineno + 1))
    return set()


def code_lines(fn, lines: list[str]) -> int:
    """Non-blank, non-comment lines of ``fn``'s body, its docstring left out."""
    doc = _docstring_lines(fn)
    n = 0
    for i in range(fn.body[0].lineno, fn.end_lineno + 1):
        text = lines[i - 1].strip()
        if i not in doc and text and not text.startswith("#"):
            n += 1
    return n


def _functions():
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{path.relative_to(SRC).as_posix()}::{node.name}"
                yield name, node.lineno, code_lines(node, lines)


def test_code_lines_counts_the_body_without_docstring_blanks_and_comments():
    text = 'def f(x):\n    """Doc\n    string."""\n\n    # a comment\n    y = x\n    return y\n'
    (fn,) = ast.parse(text).body
    assert code_lines(fn, text.splitlines()) == 2


def test_the_source_is_found():
    assert sum(1 for _ in _functions()) > 500


def test_no_function_is_longer_than_60_code_lines():
    long = [
        f"{name} (line {line}): {n} code lines"
        for name, line, n in _functions()
        if n > MAX_CODE_LINES and name not in PENDING
    ]
    assert not long, f"split into named helpers (at most {MAX_CODE_LINES}):\n" + "\n".join(long)


def test_pending_entries_name_a_function():
    found = {name for name, _, _ in _functions()}
    assert set(PENDING) <= found, f"gone, drop them: {sorted(set(PENDING) - found)}"
