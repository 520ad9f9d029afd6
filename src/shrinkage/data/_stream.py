"""Whitened patches streamed from image folders of any size, with flat memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .._checks import check_int_at_least
from ._images import image_files, read_image
from ._patches import WHITENINGS, patches


def patch_stream(
    source,
    size: int = 16,
    batch_size: int = 10_000,
    n_batches: int | None = None,
    images_per_batch: int = 8,
    whiten="olshausen",
    seed=0,
    **patch_kw,
) -> Iterator[np.ndarray]:
    """Batches of ``batch_size`` random ``size`` x ``size`` patches (rows, as
    :func:`shrinkage.data.patches`) drawn from a folder (or file, or list of 2-D arrays) of
    images of any size, reading only ``images_per_batch`` images per batch.

    Each batch comes from a fresh group of images, taken in a random order that covers the
    whole folder before any image repeats (then reshuffled); each image of the group is
    whitened on its own as in :func:`patches`. Memory holds one group and one batch, so a
    folder of thousands of van Hateren images streams as easily as the bundled photos.
    ``n_batches=None`` streams forever. Deterministic for a given ``seed``.

    Examples
    --------
    >>> from shrinkage.data import natural_images
    >>> stream = patch_stream(natural_images(["camera", "moon"]), size=8, batch_size=100,
    ...                       n_batches=2, images_per_batch=1)
    >>> [b.shape for b in stream]
    [(100, 64), (100, 64)]
    """
    size = check_int_at_least("size", size, 2)
    batch_size = check_int_at_least("batch_size", batch_size, 1)
    if n_batches is not None:
        n_batches = check_int_at_least("n_batches", n_batches, 1)
    images_per_batch = check_int_at_least("images_per_batch", images_per_batch, 1)
    if whiten not in WHITENINGS:
        raise ValueError(f"unknown whiten {whiten!r}; known: {', '.join(map(repr, WHITENINGS))}")
    if isinstance(source, (str, Path)):
        files = image_files(source)
        if not files:
            raise ValueError(f"source={str(source)!r} holds no image files")
        load = read_image
        items = files
    else:
        items = list(source) if not isinstance(source, np.ndarray) or source.ndim == 3 else [source]
        if not items:
            raise ValueError("source is empty: pass a folder, a file or 2-D images")

        def load(im):
            return [np.asarray(im)]

    return _stream(
        items, load, size, batch_size, n_batches, images_per_batch, whiten, seed, patch_kw
    )


def _stream(items, load, size, batch_size, n_batches, per_batch, whiten, seed, patch_kw):
    rng = np.random.default_rng(seed)
    order: list[int] = []
    b = 0
    while n_batches is None or b < n_batches:
        group = []
        while len(group) < min(per_batch, len(items)):
            if not order:
                order = list(rng.permutation(len(items)))
            group.append(order.pop())
        images = [im for i in group for im in load(items[i])]
        yield patches(
            images,
            size=size,
            n=batch_size,
            whiten=whiten,
            seed=int(rng.integers(2**63 - 1)),
            **patch_kw,
        )
        b += 1


__all__ = ["patch_stream"]
