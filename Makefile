# The two commands of the README:  make demo  ·  make test
VENV ?= .venv
TEST_LAYERS := models jobs dag platform repo
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean superset $(addprefix test-,$(TEST_LAYERS))

# Two distributions, both editable: the jobs artifact (pyproject.toml, what the bundle deploys)
# and the local platform (local-platform/pyproject.toml: CLI, emulator, demo, report).
# local-platform/constraints.txt pins the whole environment: without it pip backtracks for
# many minutes through Amazon provider / botocore releases on a fresh machine.
CONSTRAINTS := local-platform/constraints.txt
$(BIN)/.installed: pyproject.toml local-platform/pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e . -e "./local-platform[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/eodrisk demo $(ARGS)

# The BI tool: Apache Superset in its own virtualenv (its pins clash with Airflow's), built from
# eodrisk/superset/requirements.txt outside the repository (~/.cache/eodrisk/superset-<hash>),
# so a clean clone on the same machine reuses it. `eodrisk bi` serves the dashboards.
superset: $(BIN)/.installed
	$(BIN)/eodrisk bi install

# The lint gates; CI (.github/workflows/ci.yml) and .pre-commit-config.yaml run the same
# commands (tests/repo/test_workflows.py keeps them in step).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint sql/ --dialect postgres
	$(BIN)/mypy risk_models

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# One target per test layer (tests/<layer>/), so a contributor runs the layer they touch:
# models (risk_models, pure numpy) · jobs (the Databricks jobs on local Spark, their faults) ·
# dag (the DAG, its config and callbacks, nights through the emulator) · platform (emulator,
# CLI, report, BI, monitoring) · repo (policy and CI gates, workflows, the bundle as deployed).
# CI runs each in its own job (.github/workflows/ci.yml); `make test` runs them all.
test-%: $(BIN)/.installed
	$(BIN)/pytest tests/$* $(PYTEST_ARGS)

# Benchmarks (benchmarks/, not tests): `make bench` (full, ~30 min on 2 cores) or
# `make bench ARGS=--quick` (< 5 min); tables are appended to benchmarks/RESULTS.md.
$(BIN)/.bench-installed: $(BIN)/.installed local-platform/pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e . -e "./local-platform[bench]"
	touch $@

bench: $(BIN)/.bench-installed
	$(BIN)/python -m benchmarks.run $(ARGS)

clean:
	rm -rf var build dist *.egg-info local-platform/build local-platform/*.egg-info
