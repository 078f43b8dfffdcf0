# Territory: `make report` runs every step for every market; `make test` runs the whole test suite,
# `make test-fast` the unit tests only (no notebooks, browser or whole runs; under a minute).
# All create .venv, install the pinned dependencies (requirements.lock) and the `territory` kernel
# on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: setup kernel-user report test test-fast lint format lab notebooks checked-outputs hooks bench bench-pipeline wheel screenshots clean

$(INSTALLED): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name territory --display-name "Territory"
	@touch $@

setup: $(INSTALLED) ## create .venv with the pinned dependencies and the `territory` Jupyter kernel

kernel-user: $(INSTALLED) ## also offer the `territory` kernel to a JupyterLab installed outside .venv
	$(BIN)/python -m ipykernel install --user --name territory --display-name "Territory"

report: $(INSTALLED) ## prepare built-in data, run all five steps for every market, write reports/index.html
	$(BIN)/territory prepare
	$(BIN)/territory run

test: lint ## lint, then unit, property, notebook (nbval) and end-to-end tests, two at a time
	$(BIN)/python -m pytest -n 2

test-fast: $(INSTALLED) ## unit tests only: no notebooks, browser, or whole runs
	$(BIN)/python -m pytest tests -m "not slow and not browser" -n 2 -q

lint: $(INSTALLED) ## ruff, then mypy on the library
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

checked-outputs: $(INSTALLED) ## rerun the notebooks and store the outputs nbval checks (cells tagged nbval-check-output)
	$(BIN)/python -m tests.checked_outputs

hooks: $(INSTALLED) ## run the pre-commit hooks on every file (install them with .venv/bin/pre-commit install)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pre-commit run --all-files

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
