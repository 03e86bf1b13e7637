# ckptguard: `make demo` and `make test` set themselves up from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.ckptguard-installed

.PHONY: demo test test-slow test-all lint bench clean venv

venv: $(STAMP)

# torch is pinned to the CPU build (2.13.0) and installed on its own first, so that no
# later requirement (pytorch-lightning, ...) can make pip reach for a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo/run_demo.py

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts
	$(PY) -m mypy

# The suite runs on every core (-n auto): many tests start Python processes and wait on them.
#   make test              lint, then every test not marked slow, with a coverage summary
#   make test-slow         only the tests marked @pytest.mark.slow (no lint, no coverage)
#   make test-all          lint, then every test, slow ones included, with coverage
#   make test TESTS=expr   only the tests whose names match the pytest -k expression `expr`
#                          (e.g. TESTS=frame, TESTS="zip and not torch"); also for test-slow
#                          and test-all. To run one file or folder, call pytest directly:
#                          $(PY) -m pytest tests/_pickle
# .ci/run runs `make test` and then `make test-slow`: CI runs every test.
TESTS ?=
PYTEST = $(PY) -m pytest -n auto $(if $(TESTS),-k "$(TESTS)")
COV    = --cov=ckptguard --cov-report=term-missing:skip-covered

test: $(STAMP) lint
	$(PYTEST) -m "not slow" $(COV)

# exit status 5 is "no test collected": no slow test (left) is not a failure
test-slow: $(STAMP)
	$(PYTEST) -m slow || test $$? -eq 5

test-all: $(STAMP) lint
	$(PYTEST) $(COV)

bench: $(STAMP)
	$(PY) benchmarks/bench_scan.py
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_code.py
	$(PY) benchmarks/bench_convert.py

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
