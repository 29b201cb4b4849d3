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
	$(VENV)/bin/pytest --durations=15

test-unit: setup
	$(VENV)/bin/pytest -m unit

test-integration: setup
	$(VENV)/bin/pytest -m integration

# The catalog on the lab, then the sealed evidence package (built on failure too: a failed
# drill's evidence is the point); the exit status is the drills'.
QUARTER ?= $(shell date -u +%Y)-Q$(shell echo $$(( ($$(date -u +%-m) - 1) / 3 + 1 )))
drill: setup
	$(VENV)/bin/drkit lab up
	@run_id=$$(date -u +%Y%m%dT%H%M%SZ)-$$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n'); \
	DRKIT_RUN_ID=$$run_id $(VENV)/bin/pytest drills -p no:cacheprovider --dr-quarter $(QUARTER) \
	  --junitxml=reports/runs/$$run_id/junit.xml $(DRILL_ARGS); status=$$?; \
	$(VENV)/bin/drkit evidence build --results reports/runs/$$run_id --quarter $(QUARTER) \
	  --out reports/evidence || exit $$?; \
	exit $$status

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
