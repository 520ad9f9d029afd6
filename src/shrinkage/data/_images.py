"""Natural images that work offline, and loaders for the formats users bring.

Bundled (no download): natural scenes and textures from scikit-image and scikit-learn.
Formats: folders of PNG/JPEG, van Hateren ``.imc``/``.iml`` (16-bit big-endian, 1024 x 1536,
no header), Olshausen's ``IMAGES.mat`` (512 x 512 x 10).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import skimage.data
import skimage.io
from scipy.io import loadmat
from sklearn.datasets import load_sample_image

from .._checks import check_choice

# Natural scenes and textures only: no text, charts, synthetic or mostly-empty images.
_SKIMAGE = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "grass",
    "gravel",
    "brick",
    "moon",
    "coins",
)
_SKLEARN = ("china", "flower")
NATURAL_IMAGES: tuple[str, ...] = _SKIMAGE + _SKLEARN
_VANHATEREN_SHAPE = (1024, 1536)


def to_gray(img) -> np.ndarray:
    """2-D float64 image in [0, 1] from gray, RGB or RGBA (uint8, uint16, bool or float)."""
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / np.iinfo(a.dtype).max
    else:
        a = a.astype(np.float64)
    if a.ndim == 3:
        if a.shape[-1] == 4:
            a = a[..., :3]
        if a.shape[-1] != 3:
            raise ValueError(f"image must be 2-D or (H, W, 3|4), got shape {a.shape}")
        a = a @ np.array([0.2125, 0.7154, 0.0721])  # ITU-R 709 luma, as skimage.color.rgb2gray
    elif a.ndim != 2:
        raise ValueError(f"image must be 2-D or (H, W, 3|4), got shape {a.shape}")
    return a


def natural_images(names=None) -> list[np.ndarray]:
    """Grayscale float64 natural images shipped by scikit-image and scikit-learn.

    ``names``: subset of :data:`NATURAL_IMAGES` (default: all twelve).

    Examples
    --------
    >>> imgs = natural_images(["camera", "china"])
    >>> [im.shape for im in imgs]
    [(512, 512), (427, 640)]
    """
    if isinstance(names, str):  # one name, not its letters
        names = (names,)
    names = NATURAL_IMAGES if names is None else tuple(names)
    for n in names:
        check_choice("image name", n, NATURAL_IMAGES)
    out = []
    for n in names:
        if n in _SKLEARN:
            out.append(to_gray(load_sample_image(f"{n}.jpg")))
        else:
            out.append(to_gray(getattr(skimage.data, n)()))
    return out


def read_vanhateren(path, shape=_VANHATEREN_SHAPE) -> np.ndarray:
    """One van Hateren ``.imc``/``.iml`` image: raw 16-bit big-endian, no header."""
    raw = Path(path).read_bytes()
    expected = int(np.prod(shape)) * 2
    if len(raw) != expected:
        raise ValueError(
            f"{path}: a van Hateren image of shape {shape} holds {expected} bytes, "
            f"this file holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=">u2").reshape(shape).astype(np.float64)


def read_olshausen_mat(path) -> list[np.ndarray]:
    """The images of an Olshausen ``IMAGES.mat`` (variable ``IMAGES``, H x W x n)."""
    mat = loadmat(path)
    keys = [k for k in mat if not k.startswith("__")]
    key = "IMAGES" if "IMAGES" in mat else (keys[0] if len(keys) == 1 else None)
    if key is None:
        raise ValueError(f"{path}: no IMAGES variable (found {keys})")
    arr = np.asarray(mat[key], dtype=np.float64)
    if arr.ndim == 2:
        return [arr]
    return [arr[:, :, i].copy() for i in range(arr.shape[2])]


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
_KNOWN_SUFFIXES = _IMAGE_SUFFIXES | {".imc", ".iml", ".mat"}


def image_files(path) -> list[Path]:
    """The image files a :func:`load_images` call would read, sorted, without reading them."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path={str(path)!r} does not exist")
    if not path.is_dir():
        _check_suffix(path)
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _KNOWN_SUFFIXES)


def _check_suffix(f: Path) -> None:
    if f.suffix.lower() not in _KNOWN_SUFFIXES:
        raise ValueError(
            f"{f}: unknown image format {f.suffix.lower()!r}; known: .png .jpg .jpeg .tif "
            ".tiff .bmp .imc .iml .mat"
        )


def read_image(f) -> list[np.ndarray]:
    """The image(s) of one file (a ``.mat`` may hold several), as :func:`load_images`; a
    file of an unknown format or one that cannot be decoded is a ValueError naming it."""
    f = Path(f)
    _check_suffix(f)
    suffix = f.suffix.lower()
    try:
        if suffix in (".imc", ".iml"):
            return [read_vanhateren(f)]
        if suffix == ".mat":
            return read_olshausen_mat(f)
        return [to_gray(skimage.io.imread(f))]
    except ValueError as e:
        if str(f) in str(e):
            raise
        raise ValueError(f"{f}: cannot read the image: {e}") from None
    except Exception as e:  # the decoders raise OSError, SyntaxError, KeyError, ...
        raise ValueError(f"{f}: cannot read the image ({type(e).__name__}: {e})") from None


def load_images(path) -> list[np.ndarray]:
    """Images from a file or folder: PNG/JPEG/TIFF, van Hateren ``.imc``/``.iml``, ``.mat``.

    Photos are converted to grayscale in [0, 1]; van Hateren images keep their raw 16-bit
    values as float64 (scale them yourself or let :func:`patches` normalise them). A file
    that cannot be decoded is a ValueError naming it; files of other formats in a folder are
    skipped. For folders larger than memory, stream them with
    :func:`shrinkage.data.patch_stream`.

    >>> # load_images("vanhateren_imc/")  -> list of (1024, 1536) arrays
    """
    files = image_files(path)
    out: list[np.ndarray] = []
    for f in files:
        out.extend(read_image(f))
    if not out:
        warnings.warn(f"no images found in {path}", stacklevel=2)
    return out
