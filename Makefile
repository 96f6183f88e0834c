# Two commands matter: `make run` (the app on devhost with Azurite) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
PYTEST_ARGS ?=
PACKAGE_ARGS ?= --with-deps --output dist/app.zip

.PHONY: run test lint fmt bench soak train lock clean setup audit reliability package

setup: $(STAMP) $(NPM_STAMP) local.settings.json

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

local.settings.json:
	cp local.settings.sample.json local.settings.json

run: setup
	$(PY) -m devhost

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

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
# app's pinned environment stays exactly constraints.txt. Every pin is audited as is (--no-deps, no resolver).
audit:
	test -x .venv-audit/bin/pip-audit || ($(PYTHON) -m venv .venv-audit && .venv-audit/bin/pip install --quiet pip-audit==2.10.1)
	.venv-audit/bin/pip-audit --strict --no-deps --disable-pip -r constraints.txt

# docs/reliability.md from reports/reliability.json (written by `make test` and `make soak`).
reliability:
	$(PY) -m tests.render_reliability

# `make train DATA=my.csv` (a path or a blob URL; columns height, weight) trains on your own data instead.
DATA ?= data/height_weight.csv
train: $(STAMP)
	$(PY) -m training --data $(DATA) --out models/height-weight

package:
	bash scripts/package.sh $(PACKAGE_ARGS)

lock: $(STAMP)
	{ echo '# Full transitive pins of the dev environment (pip freeze). Regenerate with `make lock` after changing a requirements file.'; \
	  $(PY) -m pip freeze --exclude-editable; } > constraints.txt

clean:
	rm -rf $(VENV) node_modules .devhost .mypy_cache .ruff_cache .pytest_cache
