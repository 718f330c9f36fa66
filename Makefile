# cmlib: the two commands a newcomer needs are `make book` and `make test`.
# `make help` lists every entry point.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,jax,book,test
PROFILE ?= laptop
# Full transitive lock that was resolved and tested on Python 3.11 (pip alone).
CONSTRAINTS := requirements/constraints.txt

.DEFAULT_GOAL := help
.PHONY: help install book book-teacher test test-fast browser lab stored-runs benchmarks clean-book clean

help: ## List the entry points
	@echo "cmlib - companion to Heim (2023), galaxy cluster masses from mock eROSITA images"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Command-line tool (after 'make install'): $(VENV)/bin/cmlib --help"

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)' || \
	  { echo "error: cmlib needs Python 3.11; found $$($(PYTHON) --version 2>&1) at $(PYTHON)." \
	         "Install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-cache-dir -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	@touch $@

install: $(VENV)/.installed ## Create .venv and install cmlib with TensorFlow (CPU), the book stack and the test tools

book: install ## MAIN: set up, simulate, train, build the book (_build/html/index.html); PROFILE=classroom for a class
	$(VENV)/bin/cmlib book --profile $(PROFILE)

book-teacher: install ## The same book with the exercise solutions shown (_build/teacher/_build/html/index.html)
	$(VENV)/bin/cmlib book --profile $(PROFILE) --teacher

# `make test` depends on `make browser` on purpose, and says so: the browser test needs Debian's Chromium,
# and CI (which runs only `make test`, as root, on a clean machine) gets it that way. Where Chromium is
# present or cannot be installed (not root), `make browser` changes nothing.
test: install browser ## Run the test suite (runs `make browser` first: installs Chromium if root and missing)
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit code 5); treating this as a failure." >&2; exit 1; fi; \
	exit $$rc

test-fast: install ## Unit tests only (skips the smoke book build and the notebook runs)
	@$(PY) -m pytest -m "not slow and not browser"; rc=$$?; [ $$rc -eq 5 ] && exit 1; exit $$rc

browser: ## Install Debian's Chromium for the browser test of the built book, if missing (needs root and apt-get)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make browser: installing Debian's chromium for the browser test ..."; \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) \
	      || { echo "error: could not install chromium (apt-get failed); the browser test needs it" >&2; exit 1; }; \
	  else echo "note: chromium not found and not installable without root (sudo make browser); the browser test will be skipped"; fi; }

lab: install ## Open the notebooks in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

stored-runs: install ## Regenerate the committed deep-model run artifacts in results/ (hours on a CPU)
	$(VENV)/bin/cmlib stored-runs

benchmarks: install ## Run the speed and memory benchmarks (about an hour on 2 cores; writes benchmarks/results/*.json)
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_models.py --extra
	$(PY) benchmarks/bench_kernels.py

clean-book: ## Remove the built books and the executed notebooks (keeps data, runs and the environment)
	rm -rf _build book/generated

clean: clean-book ## Remove everything generated, the environment included
	rm -rf $(VENV) data runs
