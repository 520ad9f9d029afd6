"""``SparseCoding``: a scikit-learn estimator over :func:`learn_dictionary` and :func:`encode`."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_random_state

from .._checks import check_choice, check_int_at_least, check_nonnegative, check_positive
from ..thresholds import PENALTIES
from ._encode import _energy, _penalty_params, _to_tensor, encode
from ._learn import (
    INITS,
    UPDATES,
    _check_resampling,
    _check_stopping,
    learn_dictionary,
    warn_if_capped,
)

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover

    def _validate_data(est, X, reset=True, **kw):
        return est._validate_data(X, reset=reset, **kw)


class SparseCoding(TransformerMixin, BaseEstimator):
    """Dictionary learning with any penalty of ``shrinkage.thresholds`` (l1, l0, l1/2, CEL0...)
    that stops when it has converged.

    Learns unit-norm atoms ``components_`` (n_atoms, n_features) minimising the mean of
    ``1/2 ||x - r D||^2 + sum_i G(r_i)`` over the rows x of X, alternating batched codes
    (:func:`shrinkage.codes.encode`) and dictionary updates (``update="bcd"``:
    block-coordinate sweeps on statistics averaged over an adaptive window of batches,
    Mairal et al. 2009; ``"gradient"``: averaged gradient step ``lr``). ``transform``
    returns the codes, ``inverse_transform`` ``codes @ components_``, ``score`` minus the
    mean energy.

    Learning stops, like scikit-learn's ``MiniBatchDictionaryLearning``, on convergence:
    after each pass over X the pass's mean energy (or that of a ``monitor`` batch given to
    ``fit``) is compared with the best so far, and learning ends once ``max_no_improvement``
    passes in a row did not lower it by more than ``learn_tol`` (relative), or a pass moved
    the dictionary by at most ``dict_tol`` (relative Frobenius norm), or after ``n_epochs``
    passes (then with a ``ConvergenceWarning``). Atoms that go unused (or duplicate a more
    used one) are re-initialised from the residuals of the worst reconstructed samples.

    Parameters
    ----------
    n_atoms : dictionary size. The options after ``lam`` are keyword-only.
    penalty, lam, solver, relaxation : as in :func:`shrinkage.codes.encode` (e.g.
        ``penalty="l0", relaxation="cel0"``: l0 codes from their exact CEL0 relaxation).
    batch_size : samples per dictionary update.
    n_epochs : cap on the passes over X (default 100).
    learn_tol, max_no_improvement, dict_tol : the stopping rule above (defaults 1e-3, 3, 0).
    init : ``"l1"`` (default: learn first with l1 codes at the same zeroing threshold, then
        with the penalty; see :func:`learn_dictionary`), ``"data"``, ``"random"`` or an
        (n_atoms, n_features) array.
    update, lr : dictionary update rule (``"bcd"`` or ``"gradient"``) and gradient step.
    resample_every : batches between resamplings of dead or duplicate atoms (None: once per
        pass or every 50 batches; 0: never); ``min_usage``: fraction of the samples below
        which an atom counts as dead.
    max_iter, tol : encoder limits while learning; ``transform_max_iter``,
        ``transform_tol`` for ``transform``.
    random_state : int, RandomState or None (initial atoms and batch order).
    device : torch device for the computation (default CPU); results come back as numpy.

    Attributes
    ----------
    components_ : (n_atoms, n_features) learned atoms.
    n_iter_ : passes over the data (all stages); ``n_steps_``: dictionary updates.
    converged_ : whether the stopping rule (not the cap) ended the last fit / partial_fit.
    n_resampled_ : atoms re-initialised so far.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 16))
    >>> sc = SparseCoding(8, penalty="cel0", lam=0.05, random_state=0).fit(X)
    >>> sc.components_.shape, sc.transform(X).shape, sc.converged_
    ((8, 16), (100, 8), True)
    """

    def __init__(
        self,
        n_atoms=64,
        penalty="l1",
        lam=0.1,
        *,
        solver=None,
        relaxation=None,
        batch_size=256,
        n_epochs=100,
        learn_tol=1e-3,
        max_no_improvement=3,
        dict_tol=0.0,
        init="l1",
        update="bcd",
        lr=1.0,
        resample_every=None,
        min_usage=1e-3,
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
        self.learn_tol = learn_tol
        self.max_no_improvement = max_no_improvement
        self.dict_tol = dict_tol
        self.init = init
        self.update = update
        self.lr = lr
        self.resample_every = resample_every
        self.min_usage = min_usage
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

    def _check_params(self):
        """Every option, before any work (errors name the option and the value)."""
        check_int_at_least("n_atoms", self.n_atoms, 1)
        check_choice("penalty", self.penalty, PENALTIES)
        check_nonnegative("lam", self.lam)
        check_int_at_least("batch_size", self.batch_size, 1)
        check_int_at_least("n_epochs", self.n_epochs, 1)
        _check_stopping(self.learn_tol, self.dict_tol, self.max_no_improvement)
        if isinstance(self.init, str):
            check_choice("init", self.init, INITS)
        check_choice("update", self.update, UPDATES)
        check_positive("lr", self.lr)
        _check_resampling(self.resample_every, self.min_usage)
        check_int_at_least("max_iter", self.max_iter, 1)
        check_nonnegative("tol", self.tol)
        check_int_at_least("transform_max_iter", self.transform_max_iter, 1)
        check_nonnegative("transform_tol", self.transform_tol)

    def _tensor(self, X):
        return _to_tensor(X, "X", device=self.device or "cpu")

    def _seed(self):
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _monitor(self, monitor, X):
        if monitor is None:
            return None
        M = check_array(monitor, dtype=X.dtype, input_name="monitor")
        if M.shape[1] != X.shape[1]:
            raise ValueError(f"monitor must have {X.shape[1]} features like X, got shape {M.shape}")
        return self._tensor(M)

    def _learn(self, X, monitor, *, n_epochs, state, warn, init_epochs=None, check_every=None):
        return learn_dictionary(
            self._tensor(X),
            self.n_atoms,
            self.penalty,
            self.lam,
            n_epochs=n_epochs,
            batch_size=min(self.batch_size, len(X)),
            lr=self.lr,
            update=self.update,
            init=self.init,
            learn_tol=self.learn_tol,
            dict_tol=self.dict_tol,
            max_no_improvement=self.max_no_improvement,
            monitor=monitor,
            resample_every=self.resample_every,
            min_usage=self.min_usage,
            random_state=self._seed(),
            max_iter=self.max_iter,
            tol=self.tol,
            solver=self.solver,
            relaxation=self.relaxation,
            state=state,
            warn=warn,
            init_epochs=init_epochs,
            check_every=check_every,
        )

    def _finish(self, state, X):
        self._state = state
        self.components_ = state.D.detach().cpu().numpy().astype(X.dtype, copy=False)
        self.n_iter_ = state.epochs
        self.n_steps_ = state.step
        self.converged_ = state.converged
        self.n_resampled_ = state.n_resampled
        self.n_components_ = self.components_.shape[0]
        return self

    def fit(self, X, y=None, monitor=None):
        """Learn the dictionary on X (n_samples, n_features) until converged; returns self.

        ``monitor``: optional rows (m, n_features) whose mean energy, instead of each
        pass's, decides convergence.
        """
        self._check_params()
        X = _validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        M = self._monitor(monitor, X)
        state = self._learn(X, M, n_epochs=self.n_epochs, state=None, warn=False)
        warn_if_capped(state, self.n_epochs, self.learn_tol, self.dict_tol, self.max_no_improvement)
        return self._finish(state, X)

    def partial_fit(self, X, y=None, monitor=None):
        """One pass over X in mini-batches, continuing from the current dictionary, then one
        convergence check (``converged_``): on ``monitor``'s energy when given (pass the
        same rows each call, e.g. held-out samples), else on this pass's mean energy.

        The first call initialises the dictionary from X (with ``init="l1"``: l1 learning
        on this X until converged, at most ``n_epochs`` passes). A stream::

            for xb in batches:
                sc.partial_fit(xb, monitor=X_val)
                if sc.converged_:
                    break
        """
        first = not hasattr(self, "_state")
        if first:
            self._check_params()
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        M = self._monitor(monitor, X)
        state = None
        if not first:
            state = self._state
            state.D = state.D.to(self._tensor(X).dtype)
        state = self._learn(
            X, M, n_epochs=1, state=state, warn=False, init_epochs=self.n_epochs, check_every=1
        )
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
