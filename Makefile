# Two entry points: `make run` (the daemon, default config) and `make test` (the whole suite).
# Both create .venv and install the project into it on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) run.py

test: $(VENV)/.installed
	sh scripts/test-deps
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check aggregator tests
	$(VENV)/bin/ruff format --check aggregator tests bench
	$(VENV)/bin/mypy aggregator
