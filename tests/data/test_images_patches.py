"""Natural images, the format loaders and whitened patches, on small synthetic images."""

import numpy as np
import pytest

from shrinkage.data import (
    NATURAL_IMAGES,
    load_images,
    natural_images,
    olshausen_filter,
    patches,
    to_gray,
    whiten_olshausen,
    zca_matrix,
)


def pink_noise(shape, seed=0):
    """Random-phase image with a 1/f amplitude spectrum, like natural images."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spec = np.exp(2j * np.pi * rng.random(shape)) / f
    return np.real(np.fft.ifft2(spec))


def radial_power(img, bins):
    p = np.abs(np.fft.fft2(img)) ** 2
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.fftfreq(img.shape[1])[None, :]
    f = np.hypot(fx, fy)
    return np.array([p[(f >= lo) & (f < hi)].mean() for lo, hi in zip(bins[:-1], bins[1:])])


def test_whitened_spectrum_is_flat_in_pass_band():
    img = pink_noise((256, 256))
    raw = radial_power(img, np.linspace(0.02, 0.09, 8))
    white = radial_power(whiten_olshausen(img), np.linspace(0.02, 0.09, 8))
    assert raw.max() / raw.min() > 10  # the 1/f^2 power spectrum before
    assert white.max() / white.min() < 1.3  # flat after (the roll-off is < 10 % there)


def test_filter_shape_and_rolloff():
    h = olshausen_filter((64, 64), f0=0.4)
    assert h[0, 0] == 0.0  # the mean is removed
    f = np.hypot(np.fft.fftfreq(64)[None, :], np.fft.fftfreq(64)[:, None])
    np.testing.assert_allclose(h, f * np.exp(-((f / 0.2) ** 4)))


def test_patches_shape_zero_mean_variance_and_determinism():
    imgs = [pink_noise((96, 128), s) for s in range(3)]
    P = patches(imgs, size=8, n=500, seed=3)
    assert P.shape == (500, 64) and P.dtype == np.float64
    np.testing.assert_allclose(P.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_array_equal(P, patches(imgs, size=8, n=500, seed=3))
    assert not np.array_equal(P, patches(imgs, size=8, n=500, seed=4))
    # whitened images are scaled to variance 0.1; crops lose their mean (a part of it)
    assert 0.03 < P.var() < 0.1


def test_unwhitened_crops_are_pieces_of_the_image():
    img = np.arange(40 * 50, dtype=float).reshape(40, 50)
    P = patches([img], size=4, n=20, whiten=None, seed=0)
    z = (img - img.mean()) / img.std()
    # each crop of a ramp image, mean removed, equals the ramp's local offsets
    ref = (z[:4, :4] - z[:4, :4].mean()).ravel()
    np.testing.assert_allclose(P, np.broadcast_to(ref, P.shape), atol=1e-12)


def test_zca_decorrelates():
    imgs = [pink_noise((128, 128), s) for s in range(4)]
    P = patches(imgs, size=6, n=20_000, whiten="zca", seed=0, zca_eps=1e-4)
    C = np.cov(P.T)
    off = C - np.diag(np.diag(C))
    assert np.abs(off).max() < 0.1 * np.diag(C).mean()


def test_bad_input():
    img = np.zeros((10, 10))
    with pytest.raises(ValueError, match="smaller than the patch size"):
        patches([img], size=16, whiten=None)
    with pytest.raises(ValueError, match="whiten"):
        patches([np.zeros((40, 40))], whiten="pca")
    with pytest.raises(ValueError, match="size"):
        patches([np.zeros((40, 40))], size=0)
    with pytest.raises(ValueError, match="image name"):
        natural_images(["text"])
    # complex pixels would be cropped from their real part: refused
    with pytest.raises(ValueError, match=r"images\[0\] must be real, got dtype complex128"):
        patches([np.ones((40, 40), dtype=complex)], size=8, n=5)
    with pytest.raises(ValueError, match="image must be real"):
        to_gray(np.ones((4, 4), dtype=complex))
    with pytest.raises(ValueError, match="zca_eps must be > 0"):
        patches([np.random.default_rng(0).random((40, 40))], size=8, n=5, zca_eps=0.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        zca_matrix(np.ones((10, 4)), eps=-1.0)


def test_natural_images_are_gray_float():
    imgs = natural_images(["camera", "china"])
    assert [im.ndim for im in imgs] == [2, 2]
    assert all(im.dtype == np.float64 and 0 <= im.min() and im.max() <= 1 for im in imgs)
    assert {"text", "page", "horse"}.isdisjoint(NATURAL_IMAGES)


def test_load_formats(tmp_path):
    import skimage.io
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    png = (rng.random((20, 30)) * 255).astype(np.uint8)
    skimage.io.imsave(tmp_path / "a.png", png, check_contrast=False)
    vh = rng.integers(0, 2**16, (1024, 1536), dtype=np.uint16)
    (tmp_path / "b.imc").write_bytes(vh.astype(">u2").tobytes())
    mat = rng.random((32, 32, 3))
    savemat(tmp_path / "IMAGES.mat", {"IMAGES": mat})
    out = load_images(tmp_path)  # sorted: IMAGES.mat, a.png, b.imc
    assert len(out) == 5
    np.testing.assert_allclose(out[0], mat[:, :, 0])
    np.testing.assert_allclose(out[3], png / 255.0)
    np.testing.assert_array_equal(out[4], vh.astype(float))
    (tmp_path / "c.imc").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="van Hateren"):
        load_images(tmp_path / "c.imc")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_images(tmp_path / "nope")


def test_one_corrupt_file_in_a_folder_is_named(tmp_path):
    import skimage.io

    skimage.io.imsave(
        tmp_path / "good.png", (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    )
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ValueError, match=r"broken\.png: cannot read the image"):
        load_images(tmp_path)


def test_one_name_is_one_image():
    (one,) = natural_images("camera")  # once refused as "unknown image name 'c'"
    assert one.shape == (512, 512)


def test_nan_images_are_refused_not_turned_into_nan_patches():
    good = np.random.default_rng(0).random((64, 64))
    bad = good.copy()
    bad[5, 7] = np.nan
    for whiten in ("olshausen", "zca", None):
        with pytest.raises(ValueError, match=r"images\[1\] must be finite numbers, got 1 NaN"):
            patches([good, bad], size=8, n=20, whiten=whiten)


def test_zca_on_constant_images_stays_finite():
    """No variance at all: ZCA's regulariser was eps * mean(eigenvalues) = 0 (NaN patches)."""
    P = patches([np.zeros((12, 12)), np.full((12, 12), 3.0)], size=4, n=10, whiten="zca")
    assert P.shape == (10, 16) and np.isfinite(P).all()


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_a_bad_patch_seed_is_named(seed):
    img = np.random.default_rng(0).random((32, 32))
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        patches([img], 4, 10, seed=seed)


@pytest.mark.parametrize("shape", [(0, 0), (8,), (8, 2.5), 8])
def test_olshausen_filter_needs_a_two_dimensional_shape(shape):
    from shrinkage.data import olshausen_filter

    with pytest.raises(ValueError, match="shape must be \\(H, W\\)"):
        olshausen_filter(shape)


def test_whitening_and_gray_conversion_refuse_what_they_cannot_read():
    import numpy as np

    from shrinkage.data import to_gray
    from shrinkage.data._patches import zca_matrix

    for X in (np.zeros((0, 4)), np.ones(4)):
        with pytest.raises(ValueError, match="X must be"):
            zca_matrix(X)  # numpy's LinAlgError before
    with pytest.raises(ValueError, match="negative values"):
        to_gray(np.array([[-128, 127]], dtype=np.int8))  # came back as -1.008
    np.testing.assert_allclose(to_gray(np.array([[0, 127]], dtype=np.int8)), [[0.0, 1.0]])
