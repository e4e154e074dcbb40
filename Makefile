# Two entry points (see README): `make run` runs the whole pipeline on the embedded data,
# `make test` runs the test suite. Both create .venv and install the pinned dependencies first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export DAGSTER_HOME := $(CURDIR)
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: run test lint docs ui install bench screenshot clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,docs]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/allocator run

# TEST_WORKERS pytest-xdist processes, each taking whole test modules (a module's fixtures are built once)
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# ruff (lint and format check) and mypy, configured in pyproject.toml; .ci/run runs it before the tests
lint: $(STAMP)
	$(BIN)/ruff check allocator_pipeline allocator_pipeline_tests scripts
	$(BIN)/ruff format --check allocator_pipeline allocator_pipeline_tests scripts
	$(BIN)/mypy

# the documentation site (mkdocs.yml) into site/; --strict: a broken link or a stale API reference fails
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

ui: $(STAMP)
	mkdir -p .dagster_home
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $${PORT:-3000}

bench: $(STAMP)
	$(BIN)/python scripts/bench_labels.py

screenshot: $(STAMP)
	$(BIN)/python scripts/screenshot_report.py

clean:
	rm -rf site step3_out .dagster_home catboost_info .pytest_cache .hypothesis .ruff_cache .mypy_cache
