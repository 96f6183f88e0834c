# Two commands matter: `make run` (the app on devhost with Azurite) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
PYTEST_ARGS ?=
# `make test` runs the tests in this many processes (pytest-xdist), a test module's tests in one of them.
PYTEST_WORKERS ?= 2
PACKAGE_ARGS ?= --with-deps --output dist/app.zip

.PHONY: run test lint fmt bench soak train lock clean setup audit reliability package infra-scan

setup: $(STAMP) $(NPM_STAMP) local.settings.json

# requirements-dev.txt is the whole dev environment (runtime + dev, every package pinned with its hashes), so
# pip installs exactly the locked files and refuses anything it cannot verify.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	touch $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

local.settings.json:
	cp local.settings.sample.json local.settings.json

run: setup
	$(PY) -m devhost

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

fmt: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: setup
	$(PY) -m benchmarks

soak: setup
	$(PY) -m pytest -m soak -p no:cacheprovider $(PYTEST_ARGS)

# Dependency audit against PyPI's/OSV's advisories (needs network); pip-audit lives in its own venv so the
# app's pinned environment stays exactly the lock. Every pin is audited as is (--no-deps, no resolver).
audit:
	test -x .venv-audit/bin/pip-audit || ($(PYTHON) -m venv .venv-audit && .venv-audit/bin/pip install --quiet pip-audit==2.10.1)
	.venv-audit/bin/pip-audit --strict --no-deps --disable-pip -r requirements-dev.txt

# docs/reliability.md from reports/reliability.json (written by `make test` and `make soak`).
reliability:
	$(PY) -m tests.render_reliability

# `make train DATA=my.csv` (a path or a blob URL; columns height, weight) trains on your own data instead.
DATA ?= data/height_weight.csv
train: $(STAMP)
	$(PY) -m training --data $(DATA) --out models/height-weight

package:
	bash scripts/package.sh $(PACKAGE_ARGS)

# Locks with hashes from requirements.in / requirements-dev.in, resolved by uv (pinned, in its own .venv-lock)
# for the Functions image (Linux x86_64, CPython 3.11). uv keeps every version the existing lock pins unless an
# .in file asks otherwise, so running it twice gives the same files; to upgrade a package, change its .in pin
# (or pass LOCK_ARGS=--upgrade-package=NAME).
UV_VERSION := 0.13.8
UV := .venv-lock/bin/uv
LOCK_ARGS ?=
COMPILE = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command 'make lock' $(LOCK_ARGS)

$(UV):
	test -x .venv-lock/bin/python || $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

lock: $(UV)
	$(COMPILE) requirements.in -o requirements.txt
	$(COMPILE) requirements-dev.in -o requirements-dev.txt
	$(COMPILE) requirements-checkov.in -o requirements-checkov.txt

# Policy scan of the Bicep templates (checkov, pinned and hash-checked in its own .venv-checkov: its dependencies
# would disturb the app's). Offline once installed: --skip-download keeps it from fetching guidelines or
# policies. Every finding is fixed or skipped in the template with a `checkov:skip=ID: reason` comment.
# main.bicep is skipped: checkov's Bicep parser does not know lambdas (map/filter), and main.bicep declares only
# the resource group and module calls, which no checkov policy covers; the modules' resources are all scanned.
# A template checkov cannot parse would not be scanned at all, so a parsing error fails the target.
CHECKOV_STAMP := .venv-checkov/.installed
$(CHECKOV_STAMP): requirements-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

infra-scan: $(CHECKOV_STAMP)
	.venv-checkov/bin/checkov --directory infra --framework bicep --skip-path infra/main.bicep --skip-download \
	  --compact --quiet > .venv-checkov/scan.txt; status=$$?; cat .venv-checkov/scan.txt; \
	if grep -q "Parsing errors" .venv-checkov/scan.txt; then \
	  echo "infra-scan: checkov could not parse a template above, so it was not scanned" >&2; exit 1; fi; \
	exit $$status

clean:
	rm -rf $(VENV) .venv-lock .venv-checkov node_modules .devhost .mypy_cache .ruff_cache .pytest_cache
