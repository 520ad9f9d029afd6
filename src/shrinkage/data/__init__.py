"""Data that works offline: MNIST, the natural images that scikit-image and scikit-learn ship,
loaders for the formats users bring, and whitened patches."""

from ._images import (
    NATURAL_IMAGES,
    image_files,
    load_images,
    natural_images,
    read_image,
    read_vanhateren,
    to_gray,
)
from ._mnist import mnist, read_idx
from ._patches import olshausen_filter, patches, whiten_olshausen, zca_matrix
from ._stream import patch_stream

__all__ = [
    "mnist",
    "read_idx",
    "NATURAL_IMAGES",
    "natural_images",
    "load_images",
    "image_files",
    "read_image",
    "patch_stream",
    "read_vanhateren",
    "to_gray",
    "patches",
    "whiten_olshausen",
    "olshausen_filter",
    "zca_matrix",
]
