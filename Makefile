# marketcast — every target does its own set-up on a fresh machine (uv, venv, node modules).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH when present; otherwise the one `setup` installs with pip (run as a module).
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
RUN := $(UV) run --no-sync
PY_SOURCES := backend scripts tests clients/python
NPM_DIR := frontend-types

.PHONY: help setup setup-test run test test-python test-node lint format generate generate-ws-routers \
        generate-asyncapi generate-ws-types generate-python-client check-generated bench soak clean \
        chromium

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# The tested version of every Python package, dev tools included: `setup` installs exactly
# these (uv.lock stays local and git-ignored), `make lock` refreshes them. Plain `name==version`
# lines: no index or registry address, so any mirror the machine is configured with serves them.
CONSTRAINTS := constraints.txt
VENV_PY := .venv/bin/python
# `make lock LOCK_ARGS=` re-exports without upgrading (after an edit to pyproject.toml).
LOCK_ARGS ?= --upgrade

# One `pip sync` with the project itself listed (editable): exactly these packages, and nothing
# uninstalled then reinstalled while other commands use the environment.
.venv/.synced: pyproject.toml $(CONSTRAINTS)
	@$(UV) --version >/dev/null 2>&1 || { echo "installing uv"; python3 -m pip install --quiet uv; }
	@test -x $(VENV_PY) || $(UV) venv --quiet --prompt marketcast .venv
	{ cat $(CONSTRAINTS); echo "-e ."; } | $(UV) pip sync --quiet --python $(VENV_PY) -
	@touch $@

.PHONY: lock
lock: ## refresh constraints.txt: newest versions pyproject.toml allows (then make test, commit)
	@$(UV) --version >/dev/null 2>&1 || { echo "installing uv"; python3 -m pip install --quiet uv; }
	$(UV) lock --quiet $(LOCK_ARGS)
	@{ echo "# The tested versions: what \`make setup\` installs. Written by \`make lock\`; do not edit."; \
	  $(UV) export --frozen --quiet --format requirements.txt --no-hashes --no-header \
	    --no-annotate --no-emit-project --all-groups; } > $(CONSTRAINTS).new
	@if grep -nE '://|^-' $(CONSTRAINTS).new; then \
	  echo "$(CONSTRAINTS): an address or an index option above; not written" >&2; \
	  rm -f $(CONSTRAINTS).new; exit 1; fi
	@mv $(CONSTRAINTS).new $(CONSTRAINTS)
	@git diff --stat -- $(CONSTRAINTS) 2>/dev/null || true

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	cd $(NPM_DIR) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	@touch $@

# The demo page (served at /): frontend-types/demo compiled with tsc into dist/demo (git-ignored).
DEMO_BUILT := $(NPM_DIR)/dist/demo/.built
DEMO_SOURCES := $(wildcard $(NPM_DIR)/demo/*.ts $(NPM_DIR)/src/*.ts $(NPM_DIR)/src/generated/*.ts) \
        $(NPM_DIR)/tsconfig.demo.json $(NPM_DIR)/tsconfig.json

$(DEMO_BUILT): $(NPM_DIR)/node_modules/.installed $(DEMO_SOURCES)
	cd $(NPM_DIR) && npm run --silent build:demo
	@touch $@

# Debian's chromium for the browser test (tests/browser), only when missing; never a browser
# downloaded by a test tool.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  --no-install-recommends chromium; }

# Debian's redis-server, only when missing: the Redis tests start private instances of it (in
# CI too, where a missing one fails those tests instead of skipping them).
.PHONY: redis-server run-cluster
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { echo "installing redis-server (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  --no-install-recommends redis-server; }

setup: .venv/.synced $(NPM_DIR)/node_modules/.installed $(DEMO_BUILT) ## Python and Node dependencies, the demo page build

# What only the tests need on top: Debian chromium (browser test) and redis-server (Redis tests).
setup-test: setup chromium redis-server

run: setup ## serve on 127.0.0.1:8000 with the simulator feed (no services, no network)
	$(RUN) python scripts/foreground.py marketcast serve

.PHONY: run-fake
FAKE_BINANCE_PORT ?= 8911
FAKE_TWELVEDATA_PORT ?= 8912
run-fake: setup ## marketcast on MARKETCAST_PORT (8000) against fake upstreams on FAKE_*_PORT (offline)
	$(RUN) python scripts/foreground.py python scripts/run_fake.py \
	  --binance-port $(FAKE_BINANCE_PORT) --twelvedata-port $(FAKE_TWELVEDATA_PORT)

WORKERS ?= 2
# Empty: a private redis-server on a free port, started and stopped with the workers.
REDIS_URL ?=
run-cluster: setup ## WORKERS=2 workers from MARKETCAST_PORT (8000) on, sharing a private Redis (or REDIS_URL)
	$(RUN) python scripts/foreground.py python scripts/run_cluster.py --workers $(WORKERS) \
	  $(if $(REDIS_URL),--redis-url $(REDIS_URL))

test: setup-test check-generated lint test-python test-node ## the whole suite, as CI runs it

# --durations: the slowest tests in every CI log, to see one approach its timeout (pyproject).
test-python: setup-test
	$(RUN) pytest -q -n 2 --dist loadfile --durations=15

test-node: setup ## tsc --strict, type tests, topic vectors, spec validation, client vs a real server
	cd $(NPM_DIR) && npm test --silent

lint: setup ## ruff (lint + format check) and mypy --strict
	$(RUN) ruff check $(PY_SOURCES)
	$(RUN) ruff format --check $(PY_SOURCES)
	$(RUN) mypy --strict backend/marketcast scripts clients/python/src/marketcast_client clients/python/examples

format: setup ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix $(PY_SOURCES)
	$(RUN) ruff format $(PY_SOURCES)

generate-ws-routers: setup ## render ws/generic.py.j2 into ws/generated/{bars,quotes}.py
	$(RUN) python scripts/generate_ws_routers.py

generate-asyncapi: setup ## write docs/asyncapi.json from the code
	$(RUN) python scripts/generate_asyncapi.py

generate-ws-types: setup ## docs/asyncapi.json -> frontend-types/src/generated/messages.ts
	node scripts/generate_ws_types.mjs

generate-python-client: setup ## docs/asyncapi.json -> clients/python/src/marketcast_client/{models,channels}.py
	$(RUN) python scripts/generate_python_client.py

generate: generate-ws-routers generate-asyncapi generate-ws-types generate-python-client ## every generated file

check-generated: setup ## regenerate everything; fail if it differs from what git has committed
	$(RUN) python scripts/check_generated.py

# The clients run on uvloop (a project dependency); the servers on asyncio unless --loop uvloop.
bench: .venv/.synced ## fan-out benchmark vs baselines + goal gate, exit 3 on a FAIL, ~10 min (BENCH_ARGS=--quick: ~1.5 min)
	$(RUN) python -m scripts.bench $(BENCH_ARGS)

soak: .venv/.synced ## order books vs the faulty fake Binance, both modes, exit 1 on a mismatch, ~3 min (SOAK_ARGS="--minutes 10 --speed 6")
	$(RUN) python -m scripts.soak $(SOAK_ARGS)

clean:
	rm -rf .venv $(NPM_DIR)/node_modules .mypy_cache .ruff_cache .pytest_cache
