"""``SparseCoding``: a scikit-learn estimator over ``learn_dictionary`` and ``encode``."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_random_state

from .._checks import (
    check_choice,
    check_device,
    check_int_at_least,
    check_nonnegative,
    check_positive,
    check_scalar,
)
from ..thresholds import PENALTIES
from ._docs import fill_doc
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


_NUMPY_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


class SparseCoding(TransformerMixin, BaseEstimator):
    """Dictionary learning with any penalty of ``shrinkage.thresholds`` (l1, l0, l1/2, CEL0...)
    that stops when it has converged.

    Learns unit-norm atoms ``components_`` (n_atoms, n_features) minimising the mean of
    ``1/2 ||x - r D||^2 + sum_i G(r_i)`` over the rows x of X, alternating batched codes
    (``shrinkage.codes.encode``) and dictionary updates (``update="bcd"``:
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

    As every scikit-learn estimator, the constructor only stores its arguments: they are
    checked by ``fit`` (and by the first ``partial_fit``), before any work.

    Parameters
    ----------
    n_atoms : int, default 64
        Dictionary size, >= 1. The options after ``lam`` are keyword-only.
    penalty : str, default "l1"
        One of ``shrinkage.thresholds.PENALTIES``, as in ``shrinkage.codes.encode``.
    lam : float, default 0.1
        Penalty weight, >= 0, as in ``shrinkage.codes.encode``.
    solver : {"cd", "fista", "ista"}, optional
        Encoder, as in ``shrinkage.codes.encode`` (None: its default).
    relaxation : str, optional
        As in ``shrinkage.codes.encode`` (e.g. ``penalty="l0", relaxation="cel0"``: l0
        codes from their exact CEL0 relaxation).
    batch_size : int, default 256
        Samples per dictionary update (at most the number of samples).
    n_epochs : int, default 100
        Cap on the passes over X.
    learn_tol : float, default 1e-3
        Relative improvement of the objective that counts (stopping rule above), >= 0.
    max_no_improvement : int, default 3
        Passes in a row without improvement that end learning, >= 1.
    dict_tol : float, default 0.0
        Relative Frobenius change of the dictionary over a pass at or below which learning
        ends, >= 0; 0: not used.
    init : {"l1", "data", "random"} or array_like, default "l1"
        ``"l1"`` (learn first with l1 codes at the same zeroing threshold, then with the
        penalty; see ``learn_dictionary``), ``"data"``, ``"random"`` or an
        (n_atoms, n_features) array.
    update : {"bcd", "gradient"}, default "bcd"
        Dictionary update rule.
    lr : float, default 1.0
        Gradient step of ``update="gradient"``, > 0.
    resample_every : int, optional
        Batches between resamplings of dead or duplicate atoms (None: once per pass or
        every 50 batches; 0: never).
    min_usage : float, default 1e-3
        Fraction of the samples below which an atom counts as dead, in [0, 1).
    max_iter : int, default 200
        Encoder iterations while learning.
    tol : float, default 1e-3
        Encoder tolerance while learning.
    transform_max_iter : int, default 1000
        Encoder iterations for ``transform``.
    transform_tol : float, default 1e-4
        Encoder tolerance for ``transform``.
    random_state : int, numpy.random.RandomState or None, default None
        Initial atoms and batch order (None: a fresh seed at each fit).
    device : str or torch.device, optional
        Torch device for the computation (default CPU); results come back as numpy.
    distributed : bool, optional
        ``fit`` / ``partial_fit`` under ``torch.distributed`` (``learn_dictionary``'s
        option): None, data-parallel over the default process group when one exists (every
        rank fits its shard with the same options); False, this process alone.

    Attributes
    ----------
    components_ : numpy.ndarray
        (n_atoms, n_features) learned atoms, unit-norm rows, in X's dtype.
    n_components_ : int
        Number of atoms (rows of ``components_``).
    n_features_in_ : int
        Number of features seen by ``fit``.
    n_iter_ : int
        Passes over the data (all stages).
    n_steps_ : int
        Dictionary updates.
    converged_ : bool
        Whether the stopping rule (not the cap) ended the last fit / partial_fit.
    n_resampled_ : int
        Atoms re-initialised so far.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 16))
    >>> sc = SparseCoding(8, penalty="cel0", lam=0.05, random_state=0).fit(X)
    >>> sc.components_.shape, sc.transform(X).shape, sc.converged_
    ((8, 16), (100, 8), True)

    ``score`` is minus the mean energy of the codes (``shrinkage.codes.objective``):

    >>> from shrinkage.codes import objective
    >>> energy = objective(X, sc.components_, sc.transform(X), "cel0", 0.05)
    >>> bool(np.isclose(sc.score(X), -energy))
    True
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
        distributed=None,
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
        self.distributed = distributed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _check_params(self):
        """Every option, before any work (errors name the option and the value)."""
        check_int_at_least("n_atoms", self.n_atoms, 1)
        check_device("device", self.device)
        check_choice("penalty", self.penalty, PENALTIES)
        check_nonnegative("lam", self.lam)
        check_scalar("lam", self.lam)
        check_int_at_least("batch_size", self.batch_size, 1)
        check_int_at_least("n_epochs", self.n_epochs, 1)
        _check_stopping(self.learn_tol, self.dict_tol, self.max_no_improvement)
        if isinstance(self.init, str):
            check_choice("init", self.init, INITS)
        check_choice("update", self.update, UPDATES)
        check_positive("lr", self.lr)
        check_scalar("lr", self.lr)
        _check_resampling(self.resample_every, self.min_usage)
        check_int_at_least("max_iter", self.max_iter, 1)
        check_nonnegative("tol", self.tol)
        check_int_at_least("transform_max_iter", self.transform_max_iter, 1)
        check_nonnegative("transform_tol", self.transform_tol)
        if self.distributed not in (None, True, False):
            raise ValueError(f"distributed must be None, True or False, got {self.distributed!r}")

    def _tensor(self, X):
        # set_params(device=...) after fit: checked on every use, not only by fit
        check_device("device", self.device)
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
            distributed=self.distributed,
        )

    def _finish(self, state, X):
        self._state = state
        # a copy, never a view of the learning state: an edit of components_ reaches
        # partial_fit the same way whether or not the estimator was copied or pickled since
        self.components_ = np.array(state.D.detach().cpu().numpy(), dtype=X.dtype, copy=True)
        self.n_iter_ = state.epochs
        self.n_steps_ = state.step
        self.converged_ = state.converged
        self.n_resampled_ = state.n_resampled
        self.n_components_ = self.components_.shape[0]
        return self

    @fill_doc
    def fit(self, X, y=None, monitor=None):
        """Learn the dictionary on X (n_samples, n_features) until converged; returns self.

        ``monitor``: optional rows (m, n_features) whose mean energy, instead of each
        pass's, decides convergence.

        Parameters
        ----------
        X : array_like
            (n_samples, n_features) training data, at least 2 samples, float64 or float32
            (other dtypes are converted to float64).
        %(y, monitor)s

        Returns
        -------
        SparseCoding
            The fitted estimator.

        Raises
        ------
        ValueError
            When an option of the constructor is out of range (the message names it), X
            is not 2-D, has fewer than 2 samples or holds NaN or inf, or ``monitor`` does
            not have X's number of features.

        Warns
        -----
        ConvergenceWarning
            When ``n_epochs`` passes ended learning before the stopping rule.
        """
        self._check_params()
        X = _validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        M = self._monitor(monitor, X)
        state = self._learn(X, M, n_epochs=self.n_epochs, state=None, warn=False)
        warn_if_capped(state, self.n_epochs, self.learn_tol, self.dict_tol, self.max_no_improvement)
        return self._finish(state, X)

    @fill_doc
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

        Parameters
        ----------
        X : array_like
            (n_samples, n_features) batch; later calls need the first call's n_features.
        %(y, monitor)s

        Returns
        -------
        SparseCoding
            The estimator, updated.

        Raises
        ------
        ValueError
            On the first call, when an option of the constructor is out of range; when X
            is not 2-D, holds NaN or inf, or its number of features differs from the first
            call's; when ``monitor`` does not have X's number of features.
        """
        first = not hasattr(self, "_state")
        self._check_params()  # set_params may have changed them since the last call
        if not first and self.n_atoms != self._state.D.shape[0]:
            raise ValueError(
                f"n_atoms={self.n_atoms} but the dictionary learned so far has "
                f"{self._state.D.shape[0]} atoms; fit anew (fit) to change it"
            )
        # later calls learn in the first call's dtype (the state's statistics are in it)
        dtype = [np.float64, np.float32] if first else _NUMPY_DTYPE[self._state.D.dtype]
        X = _validate_data(self, X, dtype=dtype, reset=first)
        M = self._monitor(monitor, X)
        state = None if first else self._edited(self._state)
        state = self._learn(
            X, M, n_epochs=1, state=state, warn=False, init_epochs=self.n_epochs, check_every=1
        )
        return self._finish(state, X)

    def _edited(self, state):
        """The state to continue from: with ``components_`` as the user left it (assigned or
        edited in place since the last call, as scikit-learn's ``partial_fit`` continues from
        ``components_``)."""
        D = getattr(self, "components_", None)
        mine = state.D.detach().cpu().numpy()
        if D is None or (isinstance(D, np.ndarray) and np.array_equal(D, mine)):
            return state
        D = np.asarray(D)
        if D.shape != mine.shape or not np.isfinite(D).all():
            raise ValueError(
                f"components_ must be a finite array of shape {mine.shape} to continue "
                f"learning from it, got shape {D.shape}"
            )
        state.D = torch.as_tensor(D, dtype=state.D.dtype).to(state.D.device).clone()
        return state

    @fill_doc
    def transform(self, X):
        """Codes (n_samples, n_atoms) of X on the learned dictionary.

        The codes of ``shrinkage.codes.encode`` with the estimator's penalty, ``lam``,
        ``solver`` and ``relaxation``, run to ``transform_max_iter`` and ``transform_tol``.

        Parameters
        ----------
        X : array_like
            (n_samples, n_features) data with the features seen by ``fit``.

        Returns
        -------
        numpy.ndarray
            (n_samples, n_atoms) codes in X's dtype (float64 or float32).

        Raises
        ------
        %(raises_not_fitted)s
        ValueError
            When X does not have the fitted number of features, or holds NaN or inf.
        """
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

    @fill_doc
    def inverse_transform(self, codes):
        """Reconstructions ``codes @ components_`` (n_samples, n_features).

        Parameters
        ----------
        codes : array_like
            (n_samples, n_atoms) codes, e.g. from ``transform``.

        Returns
        -------
        numpy.ndarray
            (n_samples, n_features) reconstructions.

        Raises
        ------
        %(raises_not_fitted)s
        ValueError
            When ``codes`` is not (n_samples, n_atoms).
        """
        check_is_fitted(self, "components_")
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.components_.shape[0]:
            raise ValueError(
                f"codes must have shape (n_samples, {self.components_.shape[0]}), got {codes.shape}"
            )
        return codes @ self.components_

    @fill_doc
    def score(self, X, y=None):
        """Minus the mean energy 1/2 ||x - r D||^2 + sum G(r) of X's codes (higher is better).

        Parameters
        ----------
        X : array_like
            (n_samples, n_features) data, coded by ``transform``.
        %(y)s

        Returns
        -------
        float
            Minus the mean energy, <= 0.

        Raises
        ------
        %(raises_not_fitted)s
        ValueError
            As ``transform``.
        """
        Z = self.transform(X)
        X = np.asarray(X, dtype=Z.dtype)
        Xt, Zt = torch.as_tensor(X), torch.as_tensor(Z)
        D = torch.as_tensor(self.components_, dtype=Xt.dtype)
        p = _penalty_params(self.penalty, D.norm(dim=1), {})
        return -float(_energy(Xt, Xt - Zt @ D, Zt, self.penalty, float(self.lam), p).mean())


__all__ = ["SparseCoding"]
