"""``SparseCoding``: a scikit-learn estimator over :func:`learn_dictionary` and :func:`encode`."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, check_random_state

from ._encode import _energy, _penalty_params, _to_tensor, encode
from ._learn import LearnState, init_dictionary, learn_dictionary

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover

    def _validate_data(est, X, reset=True, **kw):
        return est._validate_data(X, reset=reset, **kw)


class SparseCoding(TransformerMixin, BaseEstimator):
    """Dictionary learning with any penalty of ``shrinkage.thresholds`` (l1, l0, l1/2, CEL0...).

    Learns unit-norm atoms ``components_`` (n_atoms, n_features) minimising the mean of
    ``1/2 ||x - r D||^2 + sum_i G(r_i)`` over the rows x of X, alternating batched proximal
    gradient codes (:func:`shrinkage.codes.encode`) and dictionary updates (``update=
    "gradient"``: averaged gradient step ``lr``; ``"bcd"``: block-coordinate sweep on running
    statistics, Mairal et al. 2009). ``transform`` returns the codes, ``inverse_transform``
    ``codes @ components_``, ``score`` minus the mean energy.

    Parameters
    ----------
    n_atoms : dictionary size.
    penalty, lam, solver, relaxation : as in :func:`shrinkage.codes.encode` (e.g.
        ``penalty="l0", relaxation="cel0"``: l0 codes from their exact CEL0 relaxation).
    batch_size, n_epochs, lr, update : learning schedule.
    resample_every : re-initialise rarely used atoms every that many batches (0: never).
    max_iter, tol : encoder limits while learning; ``transform_max_iter``,
        ``transform_tol`` for ``transform``.
    random_state : int, RandomState or None (initial atoms and batch order).
    device : torch device for the computation (default CPU); results come back as numpy.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 16))
    >>> sc = SparseCoding(8, penalty="cel0", lam=0.05, n_epochs=2, random_state=0).fit(X)
    >>> sc.components_.shape, sc.transform(X).shape
    ((8, 16), (100, 8))
    """

    def __init__(
        self,
        n_atoms=64,
        penalty="l1",
        lam=0.1,
        solver=None,
        relaxation=None,
        batch_size=256,
        n_epochs=5,
        lr=1.0,
        update="bcd",
        resample_every=0,
        max_iter=200,
        tol=1e-3,
        transform_max_iter=1000,
        transform_tol=1e-4,
        random_state=None,
        device=None,
    ):
        self.n_atoms = n_atoms
        self.penalty = penalty
        self.lam = lam
        self.solver = solver
        self.relaxation = relaxation
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.lr = lr
        self.update = update
        self.resample_every = resample_every
        self.max_iter = max_iter
        self.tol = tol
        self.transform_max_iter = transform_max_iter
        self.transform_tol = transform_tol
        self.random_state = random_state
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _tensor(self, X):
        return _to_tensor(X, "X", device=self.device or "cpu")

    def _seed(self):
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _run(self, X, n_epochs, state):
        Xt = self._tensor(X)
        return learn_dictionary(
            Xt,
            self.n_atoms,
            self.penalty,
            self.lam,
            n_epochs=n_epochs,
            batch_size=min(self.batch_size, len(X)),
            lr=self.lr,
            update=self.update,
            resample_every=self.resample_every,
            random_state=self._seed(),
            max_iter=self.max_iter,
            tol=self.tol,
            solver=self.solver,
            relaxation=self.relaxation,
            state=state,
        )

    def _finish(self, state: LearnState, X):
        self._state = state
        self.components_ = state.D.detach().cpu().numpy().astype(X.dtype, copy=False)
        self.n_iter_ = state.step
        self.n_components_ = self.components_.shape[0]
        return self

    def fit(self, X, y=None):
        """Learn the dictionary on X (n_samples, n_features); returns self."""
        X = _validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        state = self._run(X, self.n_epochs, None)
        return self._finish(state, X)

    def partial_fit(self, X, y=None):
        """One pass over X in mini-batches, continuing from the current dictionary."""
        first = not hasattr(self, "_state")
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        if first:
            D = init_dictionary(
                self.n_atoms, X.shape[1], None, "random", self._seed(), torch.float64
            ).to(self._tensor(X).dtype)
            state = LearnState(D=D.to(self.device or "cpu"))
        else:
            state = self._state
            state.D = state.D.to(self._tensor(X).dtype)
        state = self._run(X, 1, state)
        return self._finish(state, X)

    def transform(self, X):
        """Codes (n_samples, n_atoms) of X on the learned dictionary."""
        check_is_fitted(self, "components_")
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        D = torch.as_tensor(self.components_, dtype=self._tensor(X).dtype)
        Z = encode(
            self._tensor(X),
            D.to(self.device or "cpu"),
            self.penalty,
            self.lam,
            solver=self.solver,
            relaxation=self.relaxation,
            max_iter=self.transform_max_iter,
            tol=self.transform_tol,
        )
        return Z.cpu().numpy()

    def inverse_transform(self, codes):
        """Reconstructions ``codes @ components_`` (n_samples, n_features)."""
        check_is_fitted(self, "components_")
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.components_.shape[0]:
            raise ValueError(
                f"codes must have shape (n_samples, {self.components_.shape[0]}), got {codes.shape}"
            )
        return codes @ self.components_

    def score(self, X, y=None):
        """Minus the mean energy 1/2 ||x - r D||^2 + sum G(r) of X's codes (higher is better)."""
        Z = self.transform(X)
        X = np.asarray(X, dtype=Z.dtype)
        Xt, Zt = torch.as_tensor(X), torch.as_tensor(Z)
        D = torch.as_tensor(self.components_, dtype=Xt.dtype)
        p = _penalty_params(self.penalty, D.norm(dim=1), {})
        return -float(_energy(Xt, Xt - Zt @ D, Zt, self.penalty, float(self.lam), p).mean())


__all__ = ["SparseCoding"]
