# Territory: `make report` runs every step for every market; `make test` runs the whole test suite.
# Both create .venv and install the pinned dependencies (requirements.lock) on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: setup report test lint format lab notebooks bench bench-pipeline wheel screenshots clean

$(INSTALLED): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	@touch $@

setup: $(INSTALLED) ## create .venv with the pinned dependencies

report: $(INSTALLED) ## prepare built-in data, run all five steps for every market, write reports/index.html
	$(BIN)/territory prepare
	$(BIN)/territory run

test: $(INSTALLED) ## lint, then unit, property, notebook (nbval) and end-to-end tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED) ## format code and re-sync the notebooks with their .py twins
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/jupytext --sync notebooks/*.py

notebooks: $(INSTALLED) ## rebuild the .ipynb notebooks from their paired .py files
	$(BIN)/jupytext --sync notebooks/*.py

lab: $(INSTALLED) ## open the notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks/

bench: $(INSTALLED) ## territory design engine against METIS, GerryChain and spopt
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test,bench]"
	$(BIN)/python benchmarks/design_benchmark.py

bench-pipeline: $(INSTALLED) ## whole runs of Georgia, 3,108 US counties and ~29,300 ZIP areas: time, memory
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test,bench]"
	$(BIN)/python benchmarks/pipeline_benchmark.py

wheel: $(INSTALLED) ## build dist/territory_planner-*.whl (notebooks and built-in params inside)
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist .

screenshots: $(INSTALLED) ## run Georgia, screenshot its overview and steps 2 and 5 into docs/screenshots/ (needs Chromium)
	$(BIN)/territory prepare georgia
	$(BIN)/territory run georgia
	$(BIN)/python docs/screenshots.py georgia

clean: ## remove .venv, generated data, reports (keeps reports/README.md) and built wheels
	find reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf $(VENV) data/ build/ dist/ .pytest_cache .ruff_cache .hypothesis
