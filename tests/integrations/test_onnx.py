"""export_onnx: squashed models as dense ONNX with their sparsity in the metadata, checked
with ONNX Runtime; refusals before anything is written."""

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

import shrinkage.integrations.onnx as sx  # noqa: E402
from shrinkage.models import lenet5, lenet_300_100  # noqa: E402
from shrinkage.weights import Sparsifier  # noqa: E402


def _squashed(build, sparsity, seed=0):
    torch.manual_seed(seed)
    model = build()
    sp = Sparsifier(model, sparsity, method="st3")
    sp.squash()
    return model


def _x(n, seed=1):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_squashed_lenet5_exports_runs_in_onnxruntime_and_records_its_sparsity(tmp_path):
    model = _squashed(lenet5, 0.95)
    info = sx.export_onnx(model, _x(4), tmp_path / "m.onnx", dynamo=False)
    n = 430_500
    assert info["params"] == n and info["nonzero"] == n - int(0.95 * n)
    meta = sx.read_metadata(tmp_path / "m.onnx")
    assert float(meta["shrinkage.sparsity"]) == pytest.approx(int(0.95 * n) / n, abs=1e-6)
    # independent count: the zeros are really in the file's weight initializers
    proto = onnx.load(str(tmp_path / "m.onnx"))
    weights = [numpy_helper.to_array(t) for t in proto.graph.initializer]
    assert sum(int(np.count_nonzero(w)) for w in weights if w.ndim >= 2) == info["nonzero"]
    # another batch size than the example's: the batch axis is dynamic
    x = _x(9, seed=3)
    got = sx.session(tmp_path / "m.onnx").run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-5)
    assert info["max_abs_diff"] < 1e-4


def test_the_torch_export_path_with_a_batch_of_one(tmp_path):
    model = _squashed(lenet_300_100, 0.9)
    model.train()
    info = sx.export_onnx(model, _x(1), tmp_path / "m.onnx", dynamo=True)
    assert model.training  # mode restored
    x = _x(5, seed=4)
    got = sx.session(tmp_path / "m.onnx").run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model.eval()(x).numpy(), rtol=1e-4, atol=1e-5)
    assert info["sparsity"] == pytest.approx(0.9, abs=1e-5)


def test_refusals_name_the_problem_and_write_nothing(tmp_path, monkeypatch):
    torch.manual_seed(0)
    live = lenet_300_100()
    Sparsifier(live, 0.5)
    with pytest.raises(ValueError, match=r"squash\(\)"):
        sx.export_onnx(live, _x(2), tmp_path / "a.onnx", dynamo=False)
    with pytest.raises(ValueError, match="example_input must be a torch.Tensor"):
        sx.export_onnx(lenet_300_100(), np.zeros((2, 1, 28, 28)), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match=r"path must end in \.onnx"):
        sx.export_onnx(lenet_300_100(), _x(2), tmp_path / "a.pt")
    assert list(tmp_path.iterdir()) == []

    target = tmp_path / "keep.onnx"
    target.write_bytes(b"previous")

    class Wrong:
        def run(self, names, feeds):
            return [np.zeros((2, 10), dtype=np.float32) + 1.0]

    monkeypatch.setattr(sx, "session", lambda path, threads=1: Wrong())
    with pytest.raises(RuntimeError, match="differs from torch.*not written"):
        sx.export_onnx(lenet_300_100(), _x(2), target, dynamo=False)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.onnx"]


def test_more_refusals_before_or_instead_of_a_wrong_file(tmp_path):
    """Found by probing: an input the model cannot take was torch's RuntimeError, negative
    tolerances were taken, an opset the dynamo exporter cannot write came out silently at
    another opset, a non-ONNX file read as empty metadata, threads=0 meant "all cores"."""
    net = lenet_300_100()
    with pytest.raises(ValueError, match=r"example_input \(shape \(2, 5\)\) does not fit"):
        sx.export_onnx(net, torch.zeros(2, 5), tmp_path / "a.onnx")
    for kw in ({"rtol": -1.0}, {"atol": float("nan")}):
        with pytest.raises(ValueError, match="rtol|atol"):
            sx.export_onnx(net, _x(2), tmp_path / "a.onnx", **kw)
    with pytest.raises(ValueError, match=r"opset=3 was asked for but the exporter wrote"):
        sx.export_onnx(net, _x(2), tmp_path / "a.onnx", opset=3)
    with pytest.raises(ValueError, match="opset=3 is not one"):
        sx.export_onnx(net, _x(2), tmp_path / "a.onnx", opset=3, dynamo=False)
    assert list(tmp_path.iterdir()) == []
    info = sx.export_onnx(net, _x(2), tmp_path / "b.onnx", opset=17)
    got = [o.version for o in onnx.load(info["path"]).opset_import if o.domain in ("", "ai.onnx")]
    assert got == [17]
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"xx")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        sx.read_metadata(junk)
    assert sx.read_metadata(info["path"])["shrinkage.params"] == str(266_200)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        sx.session(info["path"], threads=0)


def test_refusals_found_by_the_third_probe(tmp_path):
    """An exported model (sparse kernels), a model returning a tuple, a 0-d input, a folder
    as path, a non-boolean flag: each named before anything is written, where they were
    torch's export error with a graph dump, an AttributeError, an IndexError or an
    IsADirectoryError naming a temporary file. A model that fixes its batch size is no
    longer written with a constant batch while dynamic_batch=True said otherwise."""
    from torch import nn

    from shrinkage.weights import export

    net = _squashed(lenet_300_100, 0.9)
    fast = export(net, candidates="torch_csr")
    with pytest.raises(ValueError, match="modules of shrinkage.weights.export.*densify"):
        sx.export_onnx(fast, _x(2), tmp_path / "a.onnx")
    meta = sx.sparsity_metadata(fast)  # the exported layers count as the dense ones
    assert meta["shrinkage.nonzero"] == sx.sparsity_metadata(net)["shrinkage.nonzero"]
    assert meta["shrinkage.params"] == str(266_200)

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 4)

        def forward(self, x):
            return self.lin(x), self.lin(x)

    class Flat(Two):
        def forward(self, x):
            return self.lin(x).reshape(3 * 4)

    with pytest.raises(ValueError, match="must return one tensor, got a tuple"):
        sx.export_onnx(Two(), torch.randn(3, 8), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="batch dimension"):
        sx.export_onnx(nn.Identity(), torch.tensor(1.0), tmp_path / "a.onnx")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ValueError, match="which is a folder"):
        sx.export_onnx(net, _x(2), tmp_path / "dir.onnx")
    with pytest.raises(ValueError, match="dynamic_batch must be True or False"):
        sx.export_onnx(net, _x(2), tmp_path / "a.onnx", dynamic_batch="no")
    for dynamo in (True, False):
        with pytest.raises(ValueError, match="fixe[sd] (the|its) batch size"):
            sx.export_onnx(Flat(), torch.randn(3, 8), tmp_path / "a.onnx", dynamo=dynamo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx"]
    info = sx.export_onnx(Flat(), torch.randn(3, 8), tmp_path / "f.onnx", dynamic_batch=False)
    assert info["path"].endswith("f.onnx")


def test_refusals_found_by_the_eleventh_probe(tmp_path):
    """rtol="1e-4" failed after the export with numpy's TypeError; path=None / 123 with
    pathlib's; a path under a file with FileExistsError; read_metadata of a text file with
    protobuf's DecodeError."""
    net = _squashed(lenet_300_100, 0.9)
    with pytest.raises(ValueError, match="rtol must be a number >= 0, got rtol='1e-4'"):
        sx.export_onnx(net, _x(2), tmp_path / "a.onnx", rtol="1e-4")
    for bad in (None, 123):
        with pytest.raises(ValueError, match="path must be a file path ending in .onnx"):
            sx.export_onnx(net, _x(2), bad)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="the folder of path=.*is a file, not a folder"):
        sx.export_onnx(net, _x(2), tmp_path / "file" / "a.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    (tmp_path / "notes.onnx").write_text("not a model at all, only some text\n" * 3)
    with pytest.raises(ValueError, match="is not an ONNX model"):
        sx.read_metadata(tmp_path / "notes.onnx")
