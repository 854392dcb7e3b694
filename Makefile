# marketcast — every target does its own set-up on a fresh machine (uv, venv, node modules).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH when present; otherwise the one `setup` installs with pip (run as a module).
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
RUN := $(UV) run --no-sync
PY_SOURCES := backend scripts tests
NPM_DIR := frontend-types

.PHONY: help setup run test test-python lint format generate generate-ws-routers \
        generate-asyncapi check-generated clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

.venv/.synced: pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || { echo "installing uv"; python3 -m pip install --quiet uv; }
	$(UV) sync --quiet
	@touch $@

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	cd $(NPM_DIR) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	@touch $@

setup: .venv/.synced $(NPM_DIR)/node_modules/.installed ## install Python and Node dependencies

run: setup ## serve on 127.0.0.1:8000 with the simulator feed (no services, no network)
	$(RUN) marketcast serve

test: setup check-generated lint test-python ## the whole suite, as CI runs it

test-python: setup
	$(RUN) pytest -q

lint: setup ## ruff (lint + format check) and mypy --strict
	$(RUN) ruff check $(PY_SOURCES)
	$(RUN) ruff format --check $(PY_SOURCES)
	$(RUN) mypy --strict backend/marketcast scripts

format: setup ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix $(PY_SOURCES)
	$(RUN) ruff format $(PY_SOURCES)

generate-ws-routers: setup ## render ws/generic.py.j2 into ws/generated/{bars,quotes}.py
	$(RUN) python scripts/generate_ws_routers.py

generate-asyncapi: setup ## write docs/asyncapi.json from the code
	$(RUN) python scripts/generate_asyncapi.py

generate: generate-ws-routers generate-asyncapi ## every generated file

check-generated: setup ## regenerate everything; fail if it differs from what git has committed
	$(RUN) python scripts/check_generated.py

clean:
	rm -rf .venv $(NPM_DIR)/node_modules .mypy_cache .ruff_cache .pytest_cache
