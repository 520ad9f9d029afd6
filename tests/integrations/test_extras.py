"""Optional extras: importing shrinkage imports none; a missing one is a one-line message."""

import importlib
import subprocess
import sys

import pytest

EXTRAS = {
    "shrinkage.integrations.hf": ("transformers", "hf"),
    "shrinkage.integrations.lightning": ("lightning", "lightning"),
    "shrinkage.integrations.onnx": ("onnx", "onnx"),
}


def test_importing_shrinkage_and_its_subpackages_imports_no_optional_extra():
    """Every module but the integrations' own (lint-imports checks the imports statically;
    this checks what really lands in sys.modules, through third-party imports too)."""
    code = (
        "import sys, shrinkage, shrinkage.integrations, shrinkage.cli, shrinkage.report, "
        "shrinkage.experiments.weights, shrinkage.experiments.finetune, "
        "shrinkage.experiments.codes, shrinkage.experiments.activations; "
        "bad = [m for m in ('transformers', 'lightning', 'onnx', 'onnxruntime', 'onnxscript') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_a_missing_extra_names_the_pip_install(module, monkeypatch):
    dep, extra = EXTRAS[module]
    monkeypatch.setitem(sys.modules, dep, None)  # import dep -> ImportError, as if absent
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError) as err:
        importlib.import_module(module)
    msg = str(err.value)
    assert msg == f"{module} needs {dep}: pip install 'shrinkage[{extra}]'"
    assert "\n" not in msg
