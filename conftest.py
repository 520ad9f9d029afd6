"""Collection settings for the whole run (tests/ and the docstring examples of src/shrinkage).

The integration modules import their optional extra at import time; where that extra is not
installed their docstring examples are not collected (tests/integrations skip on their own).
"""

import importlib.util

_EXTRAS = {"hf": "transformers", "lightning": "lightning", "onnx": "onnxruntime"}

collect_ignore = [
    f"src/shrinkage/integrations/{module}.py"
    for module, dep in _EXTRAS.items()
    if importlib.util.find_spec(dep) is None
]
