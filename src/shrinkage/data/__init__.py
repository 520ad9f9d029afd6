"""Data that works offline: MNIST, the natural images that scikit-image and scikit-learn ship,
loaders for the formats users bring, and whitened patches."""

from .mnist import mnist, read_idx

__all__ = ["mnist", "read_idx"]
