# Testimony: `make run` serves both faces locally; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test bench lint run clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/seal.py $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check crypto store intake review tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
