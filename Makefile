# The two commands of the README's quick start, and a few helpers.
#   make demo   installs expbook into .venv and runs `expbook demo` on the embedded SQLite store
#   make test   installs the development extras and runs the whole test suite (lint included)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint bench screenshots corpus corpus-score clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"expbook needs Python 3.11 or newer; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	$(BIN)/expbook demo

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/ruff check src tests benchmarks docs/screenshots.py
	$(BIN)/ruff format --check src tests benchmarks docs/screenshots.py
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks docs/screenshots.py
	$(BIN)/ruff format --check src tests benchmarks docs/screenshots.py

bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench_logging.py

# docs/images/ui-*.png, the pictures of docs/ui.md: real programs fill a fresh store, a real
# `expbook ui` serves it, Debian's Chromium takes them (apt-get install chromium).
screenshots: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python docs/screenshots.py --out docs/images

# The capture corpus (tests/corpus/): re-train every program in a venv of real frameworks, then
# score what expbook run captures against the frameworks' own records. torch comes first, from
# the local wheel; the rest are installed with torch==2.13.0 as a constraint.
FRAMEWORKS ?= .venv-frameworks
FRAMEWORK_PACKAGES ?= transformers accelerate lightning keras xgboost lightgbm scikit-learn tqdm rich pandas \
	'ray[tune]'

$(FRAMEWORKS)/bin/python:
	$(PYTHON) -m venv $(FRAMEWORKS)
	$(FRAMEWORKS)/bin/python -m pip install --quiet torch==2.13.0
	echo "torch==2.13.0" > $(FRAMEWORKS)/torch-constraint.txt
	$(FRAMEWORKS)/bin/python -m pip install --quiet -c $(FRAMEWORKS)/torch-constraint.txt \
		$(FRAMEWORK_PACKAGES)
	# expbook itself (editable) next to Ray, for the sweeps on Ray (tests/test_sweep_ray.py)
	$(FRAMEWORKS)/bin/python -m pip install --quiet -c $(FRAMEWORKS)/torch-constraint.txt -e .

corpus: $(BIN)/python $(FRAMEWORKS)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python benchmarks/bench_capture.py capture --all --python $(FRAMEWORKS)/bin/python
	$(BIN)/python benchmarks/bench_capture.py

corpus-score: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python benchmarks/bench_capture.py

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
