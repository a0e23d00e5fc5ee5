# Two entry points for a fresh machine with only Python 3.11+ and make:
#   make run    set up .venv and run the default experiment (results + figure in results/)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "collapse_jax needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,data,analysis]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/collapse-jax run

test: $(STAMP)
	$(PY) tests/run_files.py

bench: $(STAMP)
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_theory.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_distributions.py
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_strategies.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/bench_peers.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/profile_stages.py

clean:
	rm -rf $(VENV) results .pytest_cache
