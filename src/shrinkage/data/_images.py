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
from ._docs import fill_doc

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
    """2-D float64 image in [0, 1] from gray, RGB or RGBA (uint8, uint16, bool or float).

    Integer images are divided by the largest value of their dtype (255 for uint8, 65535 for
    uint16), booleans become 0 and 1, floats are kept as they are (not rescaled). Colour is
    reduced to ITU-R BT.709 luma, ``0.2125 R + 0.7154 G + 0.0721 B`` (the weights of
    ``skimage.color.rgb2gray``); the alpha channel of an RGBA image is dropped.

    Parameters
    ----------
    img : array_like
        A gray image (H, W), or a colour image (H, W, 3) or (H, W, 4).

    Returns
    -------
    numpy.ndarray
        The (H, W) float64 gray image.

    Raises
    ------
    ValueError
        When ``img`` is neither 2-D nor (H, W, 3) or (H, W, 4).

    Examples
    --------
    >>> to_gray(np.array([[0, 255], [51, 102]], dtype=np.uint8))
    array([[0. , 1. ],
           [0.2, 0.4]])

    The luma weights add up to one, so a white RGB pixel stays white:

    >>> to_gray(np.full((1, 2, 3), 255, dtype=np.uint8))
    array([[1., 1.]])
    """
    a = np.asarray(img)
    if np.iscomplexobj(a):  # gray levels are real: converting would drop the imaginary part
        raise ValueError(f"image must be real, got dtype {a.dtype}")
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.signedinteger) and a.size and a.min() < 0:
            raise ValueError(
                f"a {a.dtype} image with negative values has no [0, 1] reading; give an "
                "unsigned or float image"
            )
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

    Natural scenes and textures only (no text, charts or synthetic images), read from the
    packages' own files: nothing is downloaded. Each is converted by ``to_gray``.

    Parameters
    ----------
    names : str or iterable of str, optional
        One name or a subset of ``NATURAL_IMAGES``: ``"astronaut"``, ``"camera"``,
        ``"coffee"``, ``"chelsea"``, ``"rocket"``, ``"grass"``, ``"gravel"``, ``"brick"``,
        ``"moon"``, ``"coins"`` (scikit-image), ``"china"``, ``"flower"`` (scikit-learn).
        Default (None): all twelve.

    Returns
    -------
    list of numpy.ndarray
        One 2-D float64 image in [0, 1] per name, in the order given.

    Raises
    ------
    ValueError
        When a name is not in ``NATURAL_IMAGES`` (checked before any image is read).

    Examples
    --------
    >>> imgs = natural_images(["camera", "china"])
    >>> [im.shape for im in imgs]
    [(512, 512), (427, 640)]
    >>> all(0.0 <= im.min() and im.max() <= 1.0 for im in imgs)
    True
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


@fill_doc
def read_vanhateren(path, shape=_VANHATEREN_SHAPE) -> np.ndarray:
    """One van Hateren ``.imc``/``.iml`` image: raw 16-bit big-endian, no header.

    The pixels of the van Hateren & van der Schaaf (1998) natural-image set are stored as
    unsigned 16-bit big-endian integers, row after row, with no header: the file's size must
    be exactly ``2 * H * W`` bytes. The raw values are kept (not scaled to [0, 1]).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.imc`` (calibrated) or ``.iml`` (linear) file.
    shape : tuple of int, default (1024, 1536)
        (H, W) of the image; the set's images are 1024 x 1536.

    Returns
    -------
    numpy.ndarray
        The (H, W) image as float64, values in [0, 65535].

    Raises
    ------
    ValueError
        When the file does not hold exactly ``2 * H * W`` bytes.
    %(raises_no_path)s

    Examples
    --------
    A tiny 2 x 3 image written the way the set stores them:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     f = Path(tmp) / "tiny.imc"
    ...     _ = f.write_bytes(np.array([[0, 1, 2], [3, 4, 65535]], dtype=">u2").tobytes())
    ...     img = read_vanhateren(f, shape=(2, 3))
    >>> img
    array([[0.0000e+00, 1.0000e+00, 2.0000e+00],
           [3.0000e+00, 4.0000e+00, 6.5535e+04]])
    """
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


@fill_doc
def image_files(path) -> list[Path]:
    """The image files a ``load_images`` call would read, sorted, without reading them.

    Parameters
    ----------
    path : str or os.PathLike
        A folder (its files with a known image suffix are listed, not those of its
        sub-folders) or a single image file. Known suffixes, in any case: ``.png``,
        ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.bmp``, ``.imc``, ``.iml``, ``.mat``.

    Returns
    -------
    list of pathlib.Path
        The image files of the folder in sorted order (files of other formats skipped;
        empty when there are none), or ``[path]`` for a single file.

    Raises
    ------
    %(raises_no_path)s
    ValueError
        When ``path`` is a file whose suffix is not a known image format.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name in ("b.png", "a.JPG", "notes.txt"):
    ...         _ = (Path(tmp) / name).write_bytes(b"")
    ...     names = [f.name for f in image_files(tmp)]
    >>> names
    ['a.JPG', 'b.png']
    """
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
    """The image(s) of one file (a ``.mat`` may hold several), as ``load_images``; a
    file of an unknown format or one that cannot be decoded is a ValueError naming it.

    Photos (PNG, JPEG, TIFF, BMP) are decoded by scikit-image and converted by
    ``to_gray``; ``.imc``/``.iml`` files are read by ``read_vanhateren`` (raw
    values); a ``.mat`` file yields the images of its ``IMAGES`` variable (H x W x n, as
    Olshausen's whitened ``IMAGES.mat``), or of its only variable.

    Parameters
    ----------
    f : str or os.PathLike
        The image file.

    Returns
    -------
    list of numpy.ndarray
        The 2-D float64 image(s) of the file: one, or one per slice of a ``.mat`` stack.

    Raises
    ------
    ValueError
        When the suffix is not a known image format, or the file cannot be read or decoded
        (a missing file, a truncated or corrupt one, a ``.mat`` with no ``IMAGES``
        variable); the message names the file.

    Examples
    --------
    >>> import tempfile
    >>> import skimage.io
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     skimage.io.imsave(Path(tmp) / "tiny.png", np.array([[0, 255], [51, 102]], np.uint8))
    ...     images = read_image(Path(tmp) / "tiny.png")
    >>> images
    [array([[0. , 1. ],
           [0.2, 0.4]])]
    >>> read_image("notes.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: notes.txt: unknown image format '.txt'; known: .png .jpg ...
    """
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


@fill_doc
def load_images(path) -> list[np.ndarray]:
    """Images from a file or folder: PNG/JPEG/TIFF, van Hateren ``.imc``/``.iml``, ``.mat``.

    Photos are converted to grayscale in [0, 1]; van Hateren images keep their raw 16-bit
    values as float64 (scale them yourself or let ``patches`` normalise them). A file
    that cannot be decoded is a ValueError naming it; files of other formats in a folder are
    skipped. For folders larger than memory, stream them with
    ``shrinkage.data.patch_stream``.

    Parameters
    ----------
    path : str or os.PathLike
        A folder (its image files in sorted order, as ``image_files`` lists them) or
        one image file. A folder of van Hateren ``.imc`` files, for instance, gives a list
        of (1024, 1536) arrays.

    Returns
    -------
    list of numpy.ndarray
        Every 2-D float64 image read (a ``.mat`` file may contribute several); empty, with
        a ``UserWarning``, when the folder holds no image file.

    Raises
    ------
    %(raises_no_path)s
    ValueError
        When a file cannot be decoded (the message names it), or ``path`` is a single file
        of an unknown format.

    Examples
    --------
    >>> import tempfile
    >>> import skimage.io
    >>> black, white = np.zeros((4, 6), np.uint8), np.full((5, 5, 3), 255, np.uint8)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     skimage.io.imsave(Path(tmp) / "a.png", black, check_contrast=False)
    ...     skimage.io.imsave(Path(tmp) / "b.png", white, check_contrast=False)
    ...     _ = (Path(tmp) / "readme.txt").write_text("not an image")
    ...     images = load_images(tmp)
    >>> [(im.shape, float(im.max())) for im in images]
    [((4, 6), 0.0), ((5, 5), 1.0)]
    """
    files = image_files(path)
    out: list[np.ndarray] = []
    for f in files:
        out.extend(read_image(f))
    if not out:
        warnings.warn(f"no images found in {path}", stacklevel=2)
    return out
