# One task runner. Every target sets up what it needs from nothing (a fresh clone works).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --frozen --no-sync
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup lint format test test-unit test-integration test-infra test-e2e clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced ## create .venv with the locked dependencies

lint: setup ## ruff (lint + format check) and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: setup ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

test: setup lint test-unit test-integration test-infra test-e2e ## everything CI runs: lint, types and every test tier

test-unit: setup ## pure tests, no sockets
	$(RUN) pytest tests/unit -q

test-integration: setup ## handlers with moto, fakes and a loopback model server
	$(RUN) pytest tests/integration -q

clean: ## remove environments and build output
	rm -rf .venv $(TOOLS) cdk.out .pytest_cache .mypy_cache .ruff_cache

include make/infra.mk
include make/local.mk
include make/reliability.mk
include make/bench.mk
