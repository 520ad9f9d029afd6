"""Docstring text that the operators and modules of ``shrinkage.thresholds`` share (the
input ``x``, tau and m as arrays, the module constructors), named by ``%(name)s`` lines and
filled in at import by ``shrinkage._doc.fill``.
"""

from .._doc import fill, sections

fill_doc = fill(
    # the four operators take x and tau (the clipped two m too) and return x's type; the four
    # modules share their constructor and attributes, only m differs
    unclipped_operator=sections(
        parameters="x, tau_array",
        returns="returns_like_x",
        raises="raises_tau, raises_x",
    ),
    returns_like_x="""\
torch.Tensor or numpy.ndarray
    The operator applied elementwise: the shape of ``x``, and its type (a tensor keeps its
    dtype and device).""",
    clipped_operator=sections(
        parameters="x, tau_array, m_array",
        returns="returns_like_x",
        raises="raises_tau_m, raises_x",
    ),
    unclipped_module=sections(
        parameters="tau_module, m_none, learnable_tau",
        attributes="tau_attribute, m_none_attribute",
        raises="raises_tau_or_m",
    ),
    m_none="""\
m : None, optional
    Must be None (no clipping); kept for a signature common to all thresholding modules.""",
    m_none_attribute="""\
m : None
    The clipping magnitude (always None).""",
    raises_tau_or_m="""\
ValueError
    If ``tau`` is negative or NaN, or ``m`` is given.""",
    clipped_module=sections(
        parameters="tau_module, m_required, learnable_tau",
        attributes="tau_attribute, m_attribute",
        raises="raises_tau_or_no_m",
    ),
    m_required="""\
m : float
    Clipping magnitude > 0 (required).""",
    m_attribute="""\
m : float
    The clipping magnitude.""",
    raises_tau_or_no_m="""\
ValueError
    If ``tau`` is negative or NaN, or ``m`` is missing or not > 0.""",
    learnable_tau="""\
learnable_tau : bool, optional
    Train ``tau`` as an ``nn.Parameter`` (clamped at 0 in ``forward``). Default False.""",
    tau_attribute="""\
tau : torch.Tensor
    0-d threshold (buffer, or parameter with ``learnable_tau``).""",
    params="""\
**params
    The penalty's parameters, as in ``prox`` (checked against ``step``).""",
    lam_array="""\
lam : float or array_like
    Penalty weight >= 0, a scalar or broadcastable to ``x``.""",
    m_array="""\
m : float or array_like
    Clipping magnitude > 0, a scalar or broadcastable to ``x``.""",
    penalty_name="""\
name : str
    One of ``PENALTIES``.""",
    raises_x="""\
TypeError
    If ``x`` is not a tensor or numpy array.""",
    raises_x_complex="""\
TypeError
    ``x`` is not a tensor or numpy array, or is complex.""",
    raises_tau="""\
ValueError
    If ``tau`` is negative or NaN.""",
    raises_tau_m="""\
ValueError
    If ``tau`` is negative or NaN, or ``m`` is not > 0.""",
    step="""\
step : float, optional
    Step size > 0 (finite). Default 1.0.""",
    tau_array="""\
tau : float or array_like
    Threshold >= 0, a scalar or broadcastable to ``x``.""",
    tau_module="""\
tau : float, optional
    Threshold >= 0. Default 0.0.""",
    x="""\
x : torch.Tensor or numpy.ndarray
    Input; a tensor keeps its dtype and device, a numpy array gives a numpy array back
    (integer arrays are computed in float64).""",
)
