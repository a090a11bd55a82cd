# Every install step lives here: a fresh clone needs only python3 (3.11+) and network access to PyPI.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.13: use it when the machine has it, else the default python3.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13) $(shell command -v python3))
COMPAT_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) $(shell command -v python3.11))
UV_VERSION := 0.13.8

UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
COMPAT_VENV := .venv-py311
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
PYTEST_WORKERS ?= 2

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.stamp: pyproject.toml src/requirements.txt | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(PY) --require-hashes -r src/requirements.txt
	$(UV) pip install --quiet --python $(PY) -r pyproject.toml --extra dev
	touch $@

$(SAM_VENV)/.stamp: | $(UV)
	# SAM CLI pins older boto3/pydantic: it gets an environment of its own.
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(SAM_VENV)
	$(UV) pip install --quiet --python $(SAM_VENV)/bin/python aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $@

$(CHECKOV_VENV)/.stamp: | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python checkov==3.3.30
	touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## Create the development environment (.venv)

.PHONY: lint
lint: venv ## ruff, ruff format --check, mypy --strict on src/
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

.PHONY: unit
unit: venv ## Unit tests (pure mapping and handler pieces)
	$(PY) -m pytest tests/unit -q

.PHONY: pytest
pytest: venv ## The whole pytest suite: unit, integration and end-to-end
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

.PHONY: template
template: $(SAM_VENV)/.stamp $(CHECKOV_VENV)/.stamp ## sam validate, cfn-lint and checkov on template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml && echo "cfn-lint: template.yaml clean"
	# Every skipped check is suppressed in place in template.yaml with its reason.
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	@$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --skip-download \
		| grep -E '^(Passed|cloudformation scan)' || true

.PHONY: compat
compat: | $(UV) ## The code imports and the pure tests pass on Python 3.11 too
	@if [ -z "$(COMPAT_PYTHON)" ]; then echo "compat: no python3.11 on this machine, skipped"; else \
	  $(UV) venv --quiet --allow-existing --python $(COMPAT_PYTHON) $(COMPAT_VENV) && \
	  $(UV) pip install --quiet --python $(COMPAT_VENV)/bin/python --require-hashes -r src/requirements.txt && \
	  $(UV) pip install --quiet --python $(COMPAT_VENV)/bin/python pytest==9.2.0 && \
	  cd src && ../$(COMPAT_VENV)/bin/python -c "import handler.app, mapping; print('compat: handler.app imports on', __import__('sys').version.split()[0])" && cd .. && \
	  $(COMPAT_VENV)/bin/python -m pytest -q -p no:cacheprovider --confcutdir=tests/unit/mapping tests/unit/mapping; fi

.PHONY: test
test: lint pytest template compat ## Every check (what .ci/run runs)

.PHONY: bench
bench: venv ## Benchmarks: batch wall time, CPU per record, cold start, peak RSS (prints figures)
	$(PY) -m tests.bench.bench_relay

.PHONY: soak
soak: venv ## Fault-injection soak on the local topology (prints the guarantees table)
	$(PY) -m tests.soak.soak

.PHONY: demo
demo: venv ## Run the relay end to end on a local stack (no AWS account needed)
	$(PY) -m tests.local.demo

.PHONY: preview
preview: venv ## Show the Refersion body an event maps to (or why not): make preview EVENT=events/datafly/seed-order.json
	cd src && ../$(PY) -m mapping $(abspath $(EVENT))

.PHONY: clean
clean: ## Remove environments and caches
	rm -rf .tools $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(COMPAT_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
