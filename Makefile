# One-command set-up and the two jobs of the README: `make drill` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TOXIPROXY_VERSION := v2.12.0
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: setup python-env toxiproxy postgres report-tools test test-unit test-integration drill lint bench lab-up lab-down clean

setup: python-env toxiproxy postgres report-tools

python-env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# Toxiproxy's server is built from its Go module; `go install` names the binary `server`.
toxiproxy:
	@if command -v toxiproxy-server >/dev/null; then exit 0; fi; \
	if ! command -v go >/dev/null; then \
	  echo "setup: toxiproxy-server is not on PATH and Go is not installed; install Go (apt-get install golang) or put toxiproxy-server on PATH" >&2; exit 1; fi; \
	echo "setup: building toxiproxy-server $(TOXIPROXY_VERSION) with go install"; \
	mkdir -p .tools/gobin .tools/bin && \
	GOBIN=$(CURDIR)/.tools/gobin go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION) && \
	mv .tools/gobin/server .tools/bin/toxiproxy-server

postgres:
	@bash .ci/ensure-postgres.sh

# Chromium, Node.js and Allure 3 (reports/package-lock.json) for the offline HTML report.
report-tools:
	@bash .ci/ensure-report-tools.sh

test: setup
	$(VENV)/bin/pytest

test-unit: setup
	$(VENV)/bin/pytest -m unit

test-integration: setup
	$(VENV)/bin/pytest -m integration

drill: setup
	$(VENV)/bin/drkit lab up
	$(VENV)/bin/pytest drills -p no:cacheprovider
	@echo "drill evidence (histories, ledger, Allure results): $$(ls -td reports/runs/*/ | head -1)"

lint: python-env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/bench_lab.py

lab-up: setup
	$(VENV)/bin/drkit lab up

lab-down: python-env
	$(VENV)/bin/drkit lab down

clean:
	-$(VENV)/bin/drkit lab down
	rm -rf .drkit reports/runs
