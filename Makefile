# NSM — the way in for people and CI alike. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  := scripts/stack.sh

.PHONY: help install up down status up-cluster down-cluster lint format generate rules-test test test-unit test-integration demo bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The engine (native/, a cargo workspace: native/engine and its Python bindings native/python)
# is built by maturin with rustup's cargo.
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock $(wildcard native/*/Cargo.toml) native/python/pyproject.toml native/python/nsm_native.pyi $(shell find native/engine/src native/python/src -name '*.rs')

$(BIN)/.installed: pyproject.toml $(NATIVE_SOURCES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs) to build native/" >&2; exit 1; }
	@$(BIN)/pip install -q ./native/python
	@$(BIN)/pip install -q -e '.[dev]'
	@# redis ships its own types; the old types-redis stubs would shadow them (and lack the cluster's).
	@$(BIN)/pip uninstall -q -y types-redis 2>/dev/null || true
	@touch $@

install: $(BIN)/.installed ## create the virtual environment, install NSM and fetch the services (Debian packages, Kafka jars)
	@$(STACK) install

up: install ## start local Kafka (KRaft), Redis and Prometheus on 127.0.0.1 (idempotent)
	@$(STACK) up

down: ## stop the local services started by `make up`
	@$(STACK) down

status: ## show which local services are running, with pid and port
	@$(STACK) status

up-cluster: install ## a local Redis Cluster (3+3, 127.0.0.1:7001-7006) and three-broker Kafka (29092-29094)
	@$(STACK) up-cluster

down-cluster: ## stop the clusters started by `make up-cluster`
	@$(STACK) down-cluster

lint: $(BIN)/.installed ## ruff (lint + format check), mypy, rustfmt and clippy
	$(BIN)/ruff check processor tests benchmarks scripts
	$(BIN)/ruff format --check processor tests benchmarks scripts
	$(BIN)/mypy
	cargo fmt --manifest-path native/Cargo.toml --all --check
	cargo clippy --manifest-path native/Cargo.toml --workspace --all-targets -q -- -D warnings

format: $(BIN)/.installed ## apply ruff's and rustfmt's formatting and safe fixes
	$(BIN)/ruff check --fix processor tests benchmarks scripts
	$(BIN)/ruff format processor tests benchmarks scripts
	cargo fmt --manifest-path native/Cargo.toml --all

generate: $(BIN)/.installed ## regenerate dashboards, alert rules, their promtool tests and the runbook from definitions/
	$(BIN)/nsm grafana --definitions definitions --out grafana
	$(BIN)/nsm rules --definitions definitions --unit-tests prometheus/tests --runbook docs/runbook.md > prometheus/rules/nsm.yml.new
	mv prometheus/rules/nsm.yml.new prometheus/rules/nsm.yml

rules-test: install ## promtool: check the alert rules and run their unit tests (firing and silent cases)
	promtool check rules prometheus/rules/*.yml
	promtool test rules prometheus/tests/*.yml

test-unit: $(BIN)/.installed ## fast tests of pure logic, no services (the engine's cargo tests too)
	cargo test --manifest-path native/Cargo.toml --workspace -q
	$(BIN)/pytest tests/unit -q -n auto

test-integration: up ## tests against the real Kafka, Redis and Prometheus
	$(BIN)/pytest tests/integration -q

# The unit tests are pure CPU work: they run on every core at once. The integration tests share
# one Kafka, Redis and Prometheus and time what they wait for, so they run one at a time.
test: up lint rules-test ## everything CI runs: install, start the services, lint, promtool, cargo, unit and integration tests
	cargo test --manifest-path native/Cargo.toml --workspace -q
	$(BIN)/pytest tests/unit -q -n auto
	$(BIN)/pytest tests/integration -q --durations=25

demo: up ## run the pipeline: services, the worker, a generated stream and the north stars live
	@$(BIN)/python scripts/demo.py

bench: up ## measure throughput and record the figures (see BENCHMARKS.md)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean: down ## stop the services and remove their data (keeps the cached Kafka jars)
	rm -rf .stack
