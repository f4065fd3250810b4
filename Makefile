# sla-engine developer / CI entry points. `make` (or `make help`) lists them.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Touched after a successful `pip install -e '.[test]'`; the install re-runs only
# when pyproject.toml is newer than this stamp (or the venv is recreated).
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
FAULTS_ARGS ?=
# Examples of the intake fuzz test in `make test-faults` (`make test` runs a few).
FUZZ_EXAMPLES ?= 500
# The daemon: migrates the database, then consumes ticket events until SIGTERM or
# Ctrl-C. Settings come from SLA_ENGINE_* variables (see README); the defaults fit the
# local services that `make services` starts.
RUN_CMD ?= $(BIN)/sla-engine check-config config && $(BIN)/sla-engine run

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv services services-test lint test test-faults run bench bench-intake bench-timers bench-simulate bench-long-ticket bench-worklist bench-recording clean

help:
	@echo "Targets:"
	@echo "  venv      create $(VENV) (Python >= 3.11) and pip install -e '.[test]' when pyproject.toml changed"
	@echo "  services  ensure PostgreSQL and RabbitMQ are installed and running (deploy/ensure-services.sh)"
	@echo "  services-test  services, plus Debian's prometheus (promtool, a server), chromium (browser tests) and nginx (the proxy test)"
	@echo "  lint      ruff check ., ruff format --check (the Python sources) and mypy"
	@echo "  test      venv + services-test, lint, then pytest (extra args: PYTEST_ARGS='...')"
	@echo "  test-faults  the fault and load scenarios at full size, and their table (tests/faults; about an hour), then the intake fuzz test with FUZZ_EXAMPLES (500) examples"
	@echo "  run       venv + services, then RUN_CMD (now: $(RUN_CMD))"
	@echo "  bench     run benchmarks/calendar.py (calendar arithmetic)"
	@echo "  bench-intake  run benchmarks/intake.py (drain 200,000 events; real RabbitMQ and PostgreSQL)"
	@echo "  bench-timers  run benchmarks/timers.py (firing lateness with 1,000,000 open clocks)"
	@echo "  bench-simulate  run benchmarks/simulate.py (a synthetic year replayed in memory; no services)"
	@echo "  bench-long-ticket  run benchmarks/long_ticket.py (the cost of a ticket's 100th, 1,000th and 10,000th event; no services)"
	@echo "  bench-worklist  run benchmarks/worklist.py (GET /tickets per filter with 1,000,000 open clocks; real PostgreSQL)"
	@echo "  bench-recording  run benchmarks/recording.py (the engine's own CPU per event recording bench-intake's events; real PostgreSQL, no broker)"
	@echo "  clean     remove $(VENV) and caches"

venv: $(STAMP)

$(BIN)/python:
	@if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		echo "error: Python >= 3.11 is required, but '$(PYTHON)' is: $$($(PYTHON) --version 2>&1 | head -n 1)." >&2; \
		echo "       Install Python 3.11+ or run: make PYTHON=/path/to/python3.11 ..." >&2; \
		exit 1; \
	fi
	@echo "creating $(VENV) with $$($(PYTHON) --version)"
	@if ! $(PYTHON) -m venv $(VENV); then \
		rm -rf $(VENV); \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "python3 -m venv failed; installing the Debian package python3-venv and retrying" >&2; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update </dev/null && apt-get install -y python3-venv </dev/null; \
			$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "error: '$(PYTHON) -m venv' still fails after installing python3-venv" >&2; exit 1; }; \
		else \
			echo "error: '$(PYTHON) -m venv' failed; install python3-venv (as root: apt-get install -y python3-venv)" >&2; \
			exit 1; \
		fi; \
	fi

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	@touch $@

# make test and make run set up a development or CI machine: there the local
# PostgreSQL may be told to trust 127.0.0.1 (ensure-services refuses otherwise).
test run: export SLA_ENGINE_ALLOW_TRUST_AUTH := 1

services:
	bash deploy/ensure-services.sh

# The tests also need Debian's prometheus package (promtool, and a real server), its
# chromium (the SLA sheet's pages are checked in a real browser) and its nginx (the HTTP
# port behind the reverse proxy the README describes).
services-test:
	bash deploy/ensure-services.sh --with-prometheus --with-browser --with-proxy

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check engine tests benchmarks examples
	$(BIN)/mypy

test: venv services-test lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The short version of every scenario runs in `make test`; this is the full one.
test-faults: venv services-test
	$(BIN)/python -m tests.faults $(FAULTS_ARGS)
	SLA_ENGINE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/integration/test_fuzz_intake.py

run: venv services
	$(RUN_CMD)

bench: venv
	$(BIN)/python -m benchmarks.calendar

bench-intake: venv services
	$(BIN)/python -m benchmarks.intake

bench-timers: venv services
	$(BIN)/python -m benchmarks.timers

bench-simulate: venv
	$(BIN)/python -m benchmarks.simulate --tune-gc

bench-long-ticket: venv
	$(BIN)/python -m benchmarks.long_ticket

bench-worklist: venv services
	$(BIN)/python -m benchmarks.worklist

bench-recording: venv services
	$(BIN)/python -m benchmarks.recording

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
