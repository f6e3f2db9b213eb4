# edgekube developer entry points. `make test` is exactly what CI runs (.ci/run).
# lint, typecheck and imports all run (--keep-going) so one CI run shows every failure.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k broker -x'
PYTEST_ARGS ?=
# Number of node agents for `make up`, e.g. make up NODES=3 (default: edgekube up's own)
NODES ?=
# `make up NETWORK=pod`: each agent in its own network namespace with the pod network on (Services; needs root)
NETWORK ?=
# Masters for `make up`: 2 starts two brokers, an active and a standby master (docs/ha.md), e.g. make up MASTERS=2 NODES=3
MASTERS ?=
# `make wheel`: the wheelhouse's target. WHEEL_PLATFORM=manylinux_2_36_aarch64 fetches the dependencies for
# 64-bit Raspberry Pi OS bookworm (glibc 2.36, Python 3.11); empty = this machine's platform.
WHEEL_PLATFORM ?=
WHEEL_PYTHON ?= 3.11
WHEELHOUSE ?= dist/wheelhouse

.PHONY: help install up down test lint typecheck imports bench clean distclean wheel dashboard dashboard-check

help:
	@echo "make install    install system packages and the .venv (idempotent)"
	@echo "make up         local cluster: Mosquitto, master, node agent(s) on Podman [NODES=n] [MASTERS=2] [NETWORK=pod]"
	@echo "make down       stop the local cluster"
	@echo "make test       install, then lint, typecheck, imports and the whole pytest suite"
	@echo "make wheel      dist/wheelhouse: the edgekube wheel + its dependencies for ansible/ [WHEEL_PLATFORM=...]"
	@echo "make dashboard  rebuild the dashboard's bundle from web/dashboard (npm ci + esbuild; docs/dashboard.md)"
	@echo "make lint | typecheck | imports | bench | clean | distclean | dashboard-check"

install:
	@bash scripts/install.sh

up: install
	$(BIN)/edgekube up $(if $(NODES),--nodes $(NODES)) $(if $(MASTERS),--masters $(MASTERS)) $(if $(NETWORK),--network $(NETWORK)) $(if $(filter 0 no false,$(SECURE)),--insecure,--secure)

down:
	$(BIN)/edgekube down

test: install
	@$(MAKE) --no-print-directory --keep-going lint typecheck imports
	$(BIN)/pytest $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd ansible && PATH="$(abspath $(BIN)):$$PATH" ansible-lint --offline -q

typecheck:
	$(BIN)/mypy

imports:
	$(BIN)/lint-imports --no-cache

# The fleet's wheelhouse (ansible/ installs from it with --no-index): the edgekube wheel, built reproducibly
# (SOURCE_DATE_EPOCH of the last commit: the same sources give the same bytes, so an unchanged rebuild restarts
# nothing), and the binary wheels of every runtime dependency for WHEEL_PLATFORM / WHEEL_PYTHON.
# PURE_SDISTS: pure-Python dependencies published only as sdists (fusepy), built here into py3-none-any wheels.
PURE_SDISTS := fusepy
wheel: install
	rm -rf $(WHEELHOUSE) build
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
		$(BIN)/pip wheel --no-deps -q -w $(WHEELHOUSE) .
	$(BIN)/pip wheel --no-deps -q -w $(WHEELHOUSE) $(PURE_SDISTS)
	$(BIN)/pip download -q --only-binary=:all: --python-version $(WHEEL_PYTHON) --find-links $(WHEELHOUSE) \
		$(if $(WHEEL_PLATFORM),--platform $(WHEEL_PLATFORM)) -d $(WHEELHOUSE) $(WHEELHOUSE)/edgekube-*.whl
	@ls -1 $(WHEELHOUSE)

# The dashboard's bundle (edgekube/master/dashboard/static/dashboard.js) is committed, so building the wheel needs
# no node; this rebuilds it from web/dashboard with the npm packages package-lock.json pins (preact, htm, esbuild).
# dashboard-check: the committed bundle is exactly what the sources build (esbuild's output is deterministic).
dashboard: install
	cd web/dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

dashboard-check: dashboard
	git diff --exit-code --stat -- edgekube/master/dashboard/static/dashboard.js

bench:
	@shopt -s nullglob; benches=(benchmarks/*.py); \
	if [[ $${#benches[@]} -eq 0 ]]; then echo "bench: no benchmarks/*.py"; exit 0; fi; \
	for bench in "$${benches[@]}"; do \
		echo "bench: $$bench"; \
		$(BIN)/python "$$bench"; \
	done

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache .import_linter_cache build dist
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

# Also removes the venv and the local cluster's state (run `make down` first).
distclean: clean
	rm -rf $(VENV) .edgekube
