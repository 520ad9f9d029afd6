"""Shared docstring text of ``shrinkage.weights``: the ramps' constructor, the kernel
argument of the sparse modules, the raw weight of the operators (``%(name)s`` lines, filled
by ``shrinkage._doc.fill``).
"""

from .._doc import fill

fill_doc = fill(
    # the two ramps (Cubic, Linear) share their constructor
    ramp_sections="""\
Parameters
----------
start : int
    First step of the ramp, >= 0; ``initial`` before it.
end : int
    Step at which ``final`` is reached, > ``start``.
initial : float, default 0.0
    Sparsity before ``start``, in [0, 1).

Attributes
----------
start, end : int
    The ramp's window.
initial : float
    The sparsity before it.

Raises
------
ValueError
    ``start`` or ``end`` is not an integer >= 0, ``end <= start``, or ``initial`` is
    not in [0, 1).""",
    kernel="""\
kernel : str
    One of ``KERNELS`` but ``"dense"``.""",
    w="""\
w : torch.Tensor
    Raw weight, ``(C_out, ...)``.""",
)
