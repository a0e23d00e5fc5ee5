# Two entry points for a fresh machine with only Python 3.11+ and make:
#   make run    set up .venv and run the default experiment (results + figure in results/)
#   make test   set up .venv and run the test suite
# and the house checks (seconds, run by CI before the suite):
#   make lint   ruff (lint + format check) and mypy on the package
#   make docs   the documentation site, built strictly (a broken reference fails) into site/
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint docs docs-serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "collapse_jax needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 'setuptools>=77'  # 77: the floor pyproject.toml builds with
	$(PY) -m pip install --quiet -e '.[test,data,analysis,lint,docs]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/collapse-jax run

test: $(STAMP)
	$(PY) tests/run_files.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

bench: $(STAMP)
	$(PY) benchmarks/time_to_result.py --seeds 40
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_lambda_schedule.py
	$(PY) benchmarks/bench_theory.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_distributions.py
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_krr_predictions.py
	$(PY) benchmarks/bench_strategies.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/bench_peers.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/profile_stages.py

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache site build dist
