"""The runnable examples of the integration guide pages: every ```python block of a page,
in order, in one namespace, in a temporary folder; then a check of what the page promised."""

import os
import re
from pathlib import Path

import pytest
import torch

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
PAGES = {
    "integrations-hf.md": ("transformers", "accelerate"),
    "integrations-lightning.md": ("lightning",),
    "integrations-onnx.md": ("onnx", "onnxruntime"),
    "finetune.md": (),
}


def _blocks(page: str) -> list[str]:
    text = (GUIDE / page).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_guide_page_example_runs(page, tmp_path, monkeypatch, capsys):
    for dep in PAGES[page]:
        pytest.importorskip(dep)
    blocks = _blocks(page)
    assert blocks, f"{page} has no python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    ns: dict = {"__name__": f"guide_{page.replace('-', '_').replace('.', '_')}"}
    torch.manual_seed(0)
    for block in blocks:
        exec(compile(block, f"{page}:example", "exec"), ns)
    capsys.readouterr()
    if page == "integrations-hf.md":
        w = ns["plain"].cls.predictions.decoder.weight
        assert float((w == 0).float().mean()) > 0.5
        assert w is ns["plain"].bert.embeddings.word_embeddings.weight
    elif page == "integrations-lightning.md":
        x = torch.rand(4, 1, 28, 28)
        with torch.no_grad():
            assert torch.equal(ns["again"].eval()(x), ns["lit"].eval()(x))
        assert float(ns["trainer"].logged_metrics["sparsity"]) == pytest.approx(0.95, abs=1e-3)
    elif page == "integrations-onnx.md":
        assert ns["info"]["sparsity"] == pytest.approx(0.95, abs=1e-5)
        assert ns["logits"].shape == (3, 10)
    else:
        assert ns["res"]["sparsity"] == pytest.approx(0.95, abs=1e-5)
        assert os.path.isfile("runs/ft/model.pt")
