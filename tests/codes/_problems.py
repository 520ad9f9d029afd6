"""Synthetic sparse-coding problems shared by the encoder tests."""

import numpy as np


def sparse_problem(n=30, k=96, p=24, seed=0):
    """Overcomplete unit-norm dictionary, signals made of a few atoms plus noise."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((k, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n, k))
    for i in range(n):
        idx = rng.choice(k, size=4, replace=False)
        Z[i, idx] = rng.standard_normal(4) * 2.0
    return Z @ D + 0.1 * rng.standard_normal((n, p)), D
