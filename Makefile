# etlrun's development tasks. `make help` lists them; each target's `## ` comment is its help.
# Everything runs from .venv, which `make venv` builds (again only when pyproject.toml changes).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CLINIC := demo/clinic.db

# python3.11 if there is one, else python3 (checked to be >= 3.11 when the venv is made)
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

.PHONY: help venv demo test test-unit lint fmt schema golden bench check clean

help: ## list the targets
	@echo "usage: make TARGET"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install etlrun[dev] (again when pyproject.toml changes)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "venv: no python3.11 or python3 on PATH (need Python >= 3.11)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "venv: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); etlrun needs >= 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

$(CLINIC): | $(STAMP)
	$(PY) demo/make_clinic.py $@

demo: $(STAMP) $(CLINIC) ## generate demo/clinic.db if missing and run jobs/nightly.yaml (SQLite -> DuckDB)
	$(VENV)/bin/etlrun jobs/nightly.yaml

# the tests start etlrun as a subprocess hundreds of times: compiled once here, as installing it
# would, instead of again at every start where PYTHONDONTWRITEBYTECODE is set (a fresh clone)
test: $(STAMP) ## run every test (server tests skip when no PostgreSQL/MariaDB answers)
	$(PY) -m compileall -q runner
	$(PY) -m pytest

test-unit: $(STAMP) ## run the unit tests only (no I/O, seconds)
	$(PY) -m pytest tests/unit

lint: $(STAMP) ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP) ## format the code and apply ruff's safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schema: $(STAMP) ## regenerate schemas/job.schema.json
	$(VENV)/bin/etlrun schema

golden: $(STAMP) ## regenerate the golden files under tests/golden/
	ETLRUN_UPDATE_GOLDEN=1 $(PY) -m pytest tests/golden tests/unit -q

bench: $(STAMP) ## run the benchmarks (bench/run.py)
	@if [ -f bench/run.py ]; then $(PY) bench/run.py; \
	else echo "bench: not built yet (issue 3)" >&2; exit 1; fi

check: lint test ## lint, then every test

clean: ## remove .venv, caches and generated demo files
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis build *.egg-info .etlrun
	rm -f demo/*.db demo/*.duckdb demo/*.wal
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
