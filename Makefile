# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both set up a virtualenv on first use; nothing needs installing by hand beyond python3.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

$(BIN)/runner: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

.PHONY: install test demo lint bench
install: $(BIN)/runner

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(BIN)/runner
	$(BIN)/python examples/demo.py

lint: $(BIN)/runner
	$(BIN)/ruff check runner tests bench examples
	$(BIN)/ruff format --check runner
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile examples/app-promise/Dockerfile

bench: $(BIN)/runner
	$(BIN)/python bench/run.py
