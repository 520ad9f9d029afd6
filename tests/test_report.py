"""`shrinkage report --quick`: the whole cross-pillar pipeline on tiny data.

The report is run once (module fixture); the tests parse its HTML and JSON and check that
every section's numbers are present, consistent between the two, and sane.
"""

import base64
import json
import warnings
from html.parser import HTMLParser

import pytest

from shrinkage.cli import main

pytestmark = pytest.mark.slow  # the report runs every pillar


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h2, self.imgs, self.links, self.cells = [], [], [], []
        self._tag = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._tag = tag
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in ("a", "link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))

    def handle_endtag(self, tag):
        self._tag = None

    def handle_data(self, data):
        if self._tag == "h2":
            self.h2.append(data)
        if self._tag == "td":
            self.cells.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", "--quick", "--out", str(out)]) == 0  # progress bars on
    page = _Page()
    page.feed((out / "report.html").read_text())
    _WARNINGS.extend(caught)
    return out, page, json.loads((out / "results.json").read_text())


_WARNINGS: list = []


def test_a_normal_run_raises_no_warning(report):
    """Nothing from the library or torch on a normal run (the progress bar once made torch
    warn about converting a grad-requiring tensor to a scalar)."""
    assert [f"{w.category.__name__}: {w.message}" for w in _WARNINGS] == []


def test_html_is_self_contained_with_a_section_per_pillar(report):
    out, page, _ = report
    assert len(page.h2) == 3
    assert [h.split(":")[0] for h in page.h2] == [
        "Sparse weights",
        "Sparse codes",
        "Sparse activations",
    ]
    assert len(page.imgs) >= 6 and not page.links
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert md.count("\n## ") == 3 and "figures/" in md
    assert all((out / "figures").glob("*.png"))


def test_header_has_versions_seed_and_commands(report):
    _, _, res = report
    h = res["header"]
    assert h["seed"] == 0 and h["torch"] and h["shrinkage"]
    for sec in res["sections"].values():
        assert sec["commands"] and all(c.startswith("shrinkage ") for c in sec["commands"])


def test_weights_numbers_are_sane(report):
    _, page, res = report
    runs = res["sections"]["weights"]["runs"]
    assert {r["method"] for r in runs} == {"st3", "gmp"}
    for r in runs:
        assert abs(r["measured_sparsity"] - r["sparsity"]) < 0.01
        assert 0.0 <= r["test_acc"] <= 1.0
        assert r["sparse_macs"] == pytest.approx((1 - r["sparsity"]) * r["dense_macs"], rel=0.05)
    # trained, not chance: the quick run still learns the digits
    assert max(r["test_acc"] for r in runs) > 0.3
    # the HTML table shows the JSON's accuracy
    assert f"{round(100 * runs[0]['test_acc'], 2):.4g}" in page.cells


def test_codes_numbers_are_sane(report):
    _, _, res = report
    rows = res["sections"]["codes"]["rows"]
    assert {r["penalty"] for r in rows} == {"l1", "cel0"}
    for r in rows:
        assert 0.0 < r["relative_error"] < 1.0
        assert 0.0 < r["active_fraction"] < 1.0
    # a larger lam gives a sparser code, for each penalty
    for pen in ("l1", "cel0"):
        rs = sorted((r for r in rows if r["penalty"] == pen), key=lambda r: r["lam"])
        assert rs[-1]["active_fraction"] < rs[0]["active_fraction"]


def test_codes_receptive_fields_are_in_the_report(report):
    """Issue 14: the Gabor fits and atom types of each penalty's dictionary, in the JSON
    and in the page, the same numbers; the type fractions of each dictionary add to 1."""
    _, page, res = report
    rf = res["sections"]["codes"]["receptive_fields"]
    assert sorted(r["penalty"] for r in rf) == ["cel0", "l1"]
    for r in rf:
        assert 0.0 <= r["v1_gabor_fraction"] <= 1.0
        kinds = ("gabor", "blob", "low-frequency", "unstructured")
        assert sum(r[f"type_{k}"] for k in kinds) == pytest.approx(1.0)
        assert str(round(r["v1_gabor_fraction"], 3)) in page.cells


def test_activations_numbers_are_sane(report):
    _, _, res = report
    sec = res["sections"]["activations"]
    cfg = sec["config"]
    assert cfg["chi"] == pytest.approx(1.0, abs=1e-9)
    assert cfg["stable"] is True and cfg["dV"] < 1.0 and cfg["m"] > 0
    tr = sec["training"]
    assert not tr["diverged"]
    assert 0.0 <= tr["test_acc"] <= 1.0
    assert abs(tr["test_sparsity_mean"] - 0.85) < 0.15
    assert len(tr["test_sparsity_per_layer"]) in (tr["depth"] - 1, tr["depth"])


def test_sections_flag_and_bad_section(tmp_path, capsys):
    assert main(["report", "--sections", "weights,bogus", "--out", str(tmp_path)]) == 2
    assert "bogus" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_cel0_atoms_figure_is_the_analysed_dictionary(report):
    """The atoms figure picked its dictionary by the median error again, and a tie broke the
    other way from the V1 analyses: it showed another lam than the receptive-field row."""
    out, _, res = report
    (cel0,) = [r for r in res["sections"]["codes"]["receptive_fields"] if r["penalty"] == "cel0"]
    assert f"CEL0 atoms (lam={cel0['lam']:.3g})" in (out / "report.md").read_text()
