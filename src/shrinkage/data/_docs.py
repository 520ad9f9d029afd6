"""Docstring text the data loaders share: a missing path and the patch size
(``shrinkage._doc.fill``).
"""

from .._doc import fill

fill_doc = fill(
    raises_no_path="""\
FileNotFoundError
    When ``path`` does not exist.""",
    size="""\
size : int, default 16
    Side of the square patches, >= 2.""",
)
