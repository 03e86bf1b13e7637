# ckptguard: `make demo` and `make test` set themselves up from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.ckptguard-installed

.PHONY: demo test lint bench clean venv

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

# the suite runs on every core (-n auto): many tests start Python processes and wait on them
test: $(STAMP) lint
	$(PY) -m pytest -n auto

bench: $(STAMP)
	$(PY) benchmarks/bench_scan.py
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_code.py
	$(PY) benchmarks/bench_convert.py

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
