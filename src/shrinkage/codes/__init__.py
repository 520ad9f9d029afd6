"""Sparse coding and dictionary learning beyond l1 (Rentzeperis et al. 2023), V1 analyses.

- ``encode`` -- batched FISTA / ISTA codes for every penalty of ``shrinkage.thresholds``
- ``objective`` -- the energy 1/2 ||x - r D||^2 + sum G(r)
- ``SparseCoding`` -- scikit-learn estimator learning a dictionary
- metrics: ``relative_error``, ``snr_db``, ``active_fraction``, ``atom_usage``
- ``planted_problem``, ``atom_recovery`` -- known dictionaries, and finding them
- ``shrinkage.codes.v1`` -- Gabor fits, grating orientation tuning, plots
"""

from ._encode import SOLVERS, encode, encode_batches, lipschitz, objective
from ._learn import UPDATES, LearnState, init_dictionary, learn_dictionary
from .estimator import SparseCoding
from .metrics import active_fraction, atom_usage, relative_error, snr_db
from .synthetic import atom_recovery, matched_cosines, planted_problem

__all__ = [
    "SOLVERS",
    "encode",
    "encode_batches",
    "lipschitz",
    "objective",
    "SparseCoding",
    "learn_dictionary",
    "init_dictionary",
    "LearnState",
    "UPDATES",
    "relative_error",
    "snr_db",
    "active_fraction",
    "atom_usage",
    "planted_problem",
    "atom_recovery",
    "matched_cosines",
]
