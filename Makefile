# Utopia: `make demo` runs the system, `make test` checks everything. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
# PyO3 builds (clippy, maturin) use the project's interpreter, not whatever python3 is first.
export PYO3_PYTHON := $(PY)

STAMP := $(VENV)/.installed

.PHONY: help dev build test test-rust test-python lint fmt bench demo clean timescale-bridge test-deploy

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml edge/pyproject.toml server/pyproject.toml tui/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./edge
	$(PY) -m pip install -q "maturin>=1.7,<2"
	$(VENV)/bin/maturin develop --release -q --extras dev
	$(PY) -m pip install -q -e ./server -e ./tui
	@touch $@

dev: $(STAMP) ## create .venv with the core (Rust extension), edge, server, dashboard and dev tools

build: $(STAMP) ## (re)build the Rust extension into .venv
	$(VENV)/bin/maturin develop --release -q

test-rust: ## cargo test and clippy on the Rust core
	cargo test -q
	cargo clippy -q --all-targets --all-features -- -D warnings

lint: build ## ruff, mypy --strict, stubtest of the extension, rustfmt and clippy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest utopia._core
	cargo fmt --check
	cargo clippy -q --all-targets --all-features -- -D warnings

timescale-bridge: tests/timescale_bridge/node_modules ## PGlite with TimescaleDB, for the timescaledb test group

tests/timescale_bridge/node_modules: tests/timescale_bridge/package-lock.json
	npm ci --prefix tests/timescale_bridge --no-audit --no-fund
	@touch $@

test-python: build timescale-bridge ## pytest (real nats-server and PostgreSQL, started by the tests; both storage flavours)
	UTOPIA_REQUIRE_TIMESCALE=1 $(VENV)/bin/pytest

test: build test-rust lint test-python ## everything CI runs

test-deploy: $(STAMP) ## the Ansible deployment: lint, rendered configs checked, converge of throwaway Debian 12 roots (as root)
	bash tests/deploy/run.sh

fmt: ## format Python and Rust
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	cargo fmt

bench: build ## benchmarks: core vs reference, storage write path vs COPY, edge agent, end to end, 1 vs 2 workers (utopia bench)
	$(PY) -m utopia.benchmarks.core
	$(PY) benchmarks/storage_bench.py
	$(PY) benchmarks/edge_bench.py
	$(PY) benchmarks/api_bench.py
	$(VENV)/bin/utopia bench
	$(VENV)/bin/utopia bench --scale-out

demo: build ## run the system on this machine with embedded defaults
	$(VENV)/bin/utopia demo

clean: ## remove build output and the virtual environment
	rm -rf target $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
