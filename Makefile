# The project's verbs. `make demo` and `make test` work on a fresh machine with PostgreSQL and Redis running.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: install demo test bench lint format check-services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(VENV)/.installed node_modules/.installed  ## Create the virtualenv and install pinned dependencies

demo: install  ## Migrate, create admin + demo data, run web/worker/beat/connectors (Ctrl-C stops all)
	@$(BIN)/python manage.py demo --port $(PORT)

test: install  ## Run the whole test suite against the real PostgreSQL and Redis, then TimescaleDB on PGlite
	status=0; \
	$(BIN)/pytest --ignore=tests/timescaledb $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m tests.timescaledb $(TIMESCALEDB_PYTEST_ARGS) || status=$$?; \
	exit $$status

bench: install  ## Run the benchmarks; JSON results go to bench/results/
	$(BIN)/python -m bench

lint: install  ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-services: install  ## Say whether PostgreSQL and Redis are reachable
	@$(BIN)/python manage.py check_services

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
