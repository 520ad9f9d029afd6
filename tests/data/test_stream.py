"""patch_stream: folders of any size read a few images per batch, every image in turn."""

import numpy as np
import pytest
import scipy.io
import skimage.io

from shrinkage.data import _stream, patch_stream, patches, zca_matrix
from tests.data.test_images_patches import pink_noise


def _folder(tmp_path, n_png=5):
    for i in range(n_png):
        img = pink_noise((48, 56), seed=i)
        img = (255 * (img - img.min()) / (img.max() - img.min())).astype(np.uint8)
        skimage.io.imsave(tmp_path / f"im{i}.png", img, check_contrast=False)
    mat = np.stack([pink_noise((40, 40), seed=10), pink_noise((40, 40), seed=11)], axis=2)
    scipy.io.savemat(tmp_path / "IMAGES.mat", {"IMAGES": mat})
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_reads_a_few_files_per_batch_and_every_file_before_repeating(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    reads = []
    real = _stream.read_image
    monkeypatch.setattr(_stream, "read_image", lambda f: reads.append(f.name) or real(f))
    batches = list(patch_stream(folder, size=8, batch_size=50, n_batches=5, images_per_batch=2))
    assert len(reads) == 10  # 2 files per batch, never the whole folder
    assert sorted(reads[:6]) == sorted(["IMAGES.mat"] + [f"im{i}.png" for i in range(5)])
    for b in batches:
        assert b.shape == (50, 64)
        np.testing.assert_allclose(b.mean(1), 0.0, atol=1e-12)


def test_deterministic_and_like_patches():
    imgs = [pink_noise((64, 64), seed=s) for s in range(3)]
    a = list(patch_stream(imgs, size=8, batch_size=40, n_batches=3, images_per_batch=1, seed=3))
    b = list(patch_stream(imgs, size=8, batch_size=40, n_batches=3, images_per_batch=1, seed=3))
    c = list(patch_stream(imgs, size=8, batch_size=40, n_batches=3, images_per_batch=1, seed=4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    # One image per batch: the batch's patches are those of patches() on that image.
    single = [pink_noise((64, 64), seed=0)]
    (first,) = patch_stream(single, size=8, batch_size=40, n_batches=1, seed=5)
    rng = np.random.default_rng(5)
    expect = patches(single, size=8, n=40, seed=int(rng.integers(2**63 - 1)))
    np.testing.assert_array_equal(first, expect)


def test_stream_into_partial_fit(tmp_path):
    """The pipeline of the guide: a folder through patch_stream into partial_fit."""
    from shrinkage.codes import SparseCoding

    folder = _folder(tmp_path)
    sc = SparseCoding(6, lam=0.2, batch_size=64, random_state=0)
    for k, xb in enumerate(patch_stream(folder, size=6, batch_size=256, n_batches=4)):
        sc.partial_fit(xb)
        assert sc.n_iter_ == k + 1
    assert sc.components_.shape == (6, 36) and sc.n_steps_ == 4 * 4


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"n_batches": 0}, "n_batches"),
        ({"batch_size": 0}, "batch_size"),
        ({"images_per_batch": 0}, "images_per_batch"),
        ({"whiten": "pca"}, "whiten"),
        ({"size": 1}, "size"),
        ({"n": 100}, r"unknown option\(s\) 'n' for the patches; known: 'f0'"),
        ({"zca_eps": -1.0}, "zca_eps must be > 0"),
        ({"variance": 0.0}, "variance must be > 0"),
    ],
)
def test_bad_input(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        patch_stream([np.zeros((32, 32))], **kw)


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no image files"):
        patch_stream(tmp_path)
    with pytest.raises(FileNotFoundError):
        patch_stream(tmp_path / "missing")


def test_options_are_checked_when_the_stream_is_made():
    """f0 = -1, an infinite variance or a negative seed failed (or gave NaN) only at the first
    batch; patches(variance=inf) gave NaN patches and zca_matrix of a NaN a NaN matrix."""
    img = np.random.default_rng(0).random((32, 32))
    for kw, match in (
        ({"f0": -1.0}, "f0"),
        ({"variance": np.inf}, "variance"),
        ({"seed": -1}, "seed"),
    ):
        with pytest.raises(ValueError, match=match):
            patch_stream([img], size=4, batch_size=5, n_batches=1, **kw)
    with pytest.raises(ValueError, match="variance must be finite"):
        patches(img, 4, 10, variance=np.inf)
    with pytest.raises(ValueError, match="NaN or inf"):
        zca_matrix(np.array([[1.0, np.nan], [0.0, 1.0]]))
