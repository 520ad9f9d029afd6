"""What the activation theory's functions share in their docstrings: the activation, the
variance, the weight and bias scales, tau, m, the quadrature method and their errors, each
written once and named by ``%(name)s`` lines (``shrinkage._doc.fill``).
"""

from .._doc import fill, sections

fill_doc = fill(
    returns_like_q="""\
float, numpy.ndarray or torch.Tensor
    A float for a scalar ``q``, a float64 numpy array shaped like an array ``q``, a float64
    tensor on the device of a tensor ``q``.""",
    # the derivatives of the variance map take the same arguments and fail the same way
    derivative_sections=sections(
        parameters="act, q, sigma_w, sigma_b_checked, tau, m, method",
        returns="returns_like_q",
        raises="raises_map_arguments",
    ),
    act="""\
act : str or callable
    The activation phi: a name from ``ACTIVATION_NAMES`` (``"relu"``,
    ``"shifted_relu"``, ``"soft_threshold"``, ``"clipped_relu"``/``"crelu"``,
    ``"clipped_soft_threshold"``/``"cst"``, ``"tanh"``, ``"erf"``); a thresholding module
    of ``shrinkage.thresholds`` (its own tau and m are used, ``tau`` and ``m`` are
    ignored); or any callable on float64 tensors (a ``kinks`` attribute listing where
    it is not smooth makes its quadrature exact).""",
    act_clipped="""\
act : {"crelu", "cst", "clipped_relu", "clipped_soft_threshold"}
    A clipped activation.""",
    cfg="""\
cfg : EoCConfig
    An edge-of-chaos configuration of a named activation (from ``edge_of_chaos``).""",
    depth="""\
depth : int
    Number of layers, >= 2.""",
    depth_any="""\
depth : int
    Number of layers, >= 1.""",
    m="""\
m : float or None, optional
    Clipping magnitude > 0, required by ``clipped_relu`` and ``clipped_soft_threshold``
    and refused by the others. Default None.""",
    method="""\
method : {"auto", "closed", "quad", "hermite"}, optional
    ``"closed"``: the closed forms (relu, shifted_relu, soft_threshold, crelu, cst, erf);
    ``"quad"``: Gauss-Legendre split at the kinks, adaptive Gauss-Kronrod for a callable
    without ``kinks``; ``"hermite"``: Gauss-Hermite (smooth phi only); ``"auto"``: the
    closed form where there is one, else ``"quad"``. Default ``"auto"``.""",
    q="""\
q : float, array_like or torch.Tensor
    Variance(s) > 0 of the pre-activation X ~ N(0, q); the result is vectorised over q.""",
    q_star="""\
q_star : float
    The fixed-point variance ``q*`` > 0.""",
    raises_map_arguments="""\
ValueError
    An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
    threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
    ``q`` not > 0; ``sigma_w`` not > 0 or ``sigma_b`` < 0; an unknown ``method``.""",
    sigma_b="""\
sigma_b : float
    Bias scale >= 0 (biases N(0, sigma_b^2)).""",
    sigma_b_checked="""\
sigma_b : float, optional
    Bias scale >= 0; it shifts V but not its derivatives, so it is only checked.
    Default 0.0.""",
    sigma_w="""\
sigma_w : float
    Weight scale > 0 (weights N(0, sigma_w^2 / N)).""",
    sparsity="""\
sparsity : float
    Target fraction of exact zeros at ``q*``, in (0, 1) (in [0.5, 1) for CReLU).""",
    tau="""\
tau : float, optional
    Threshold >= 0 of the thresholded activations; must be 0 for the others. Default 0.0.""",
    width="""\
width : int
    Units per layer, >= 1.""",
)
