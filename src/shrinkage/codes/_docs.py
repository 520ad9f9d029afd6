"""Parameters of the sparse-coding entry points described once: signals ``X``, dictionaries
``D``, codes, penalty and lam; a docstring names one with a ``%(name)s`` line
(``shrinkage._doc.fill``).
"""

from .._doc import fill, sections

fill_doc = fill(
    # the reconstruction metrics all take (X, D, codes)
    reconstruction_parameters=sections(
        parameters="signals, dictionary, codes_of_x",
    ),
    codes="""\
codes : torch.Tensor or numpy.ndarray
    (n_samples, n_atoms) codes.""",
    codes_of_x="""\
codes : torch.Tensor or numpy.ndarray
    (n_samples, n_atoms) codes, the reconstruction of X being ``codes @ D``.""",
    dictionary="""\
D : torch.Tensor or numpy.ndarray
    (n_atoms, n_features) dictionary, one atom per row.""",
    lam="""\
lam : float, default 0.1
    Penalty weight, >= 0.""",
    monitor="""\
monitor : array_like, optional
    (m, n_features) rows whose mean energy decides convergence.""",
    penalty="""\
penalty : str, default "l1"
    One of ``shrinkage.thresholds.PENALTIES``.""",
    raises_not_fitted="""\
sklearn.exceptions.NotFittedError
    When the estimator has not been fitted.""",
    raises_not_array="""\
TypeError
    When an argument is not a tensor, an array or a (nested) list.""",
    raises_codes_not_array="""\
TypeError
    When ``codes`` is not a tensor, an array or a (nested) list.""",
    raises_shapes="""\
ValueError
    When the shapes of X, D and codes do not match.""",
    signals="""\
X : torch.Tensor or numpy.ndarray
    (n_samples, n_features) signals.""",
    y="""\
y : None
    Ignored (scikit-learn convention).""",
)
