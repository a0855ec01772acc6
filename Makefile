# The two commands of the README: `make demo` (the main job) and `make test` (the suite;
# `make test-fast` leaves out the tests marked slow, those over about 3 s).
# Both set up a virtualenv on first use from the lock file (uv.lock); nothing needs installing
# by hand beyond python3. `make lock` updates the lock; `make test-latest` tries the newest
# versions pyproject.toml allows, as a scheduled check would.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := .uv/bin/uv
# uv uses the python3 it is given and never downloads an interpreter of its own.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Bytecode is cached: the suite starts `runner` in a subprocess some thousands of times, and
# with PYTHONDONTWRITEBYTECODE set (as on some CI images) each start compiled every module
# again (0.38 s instead of 0.20 s for `runner validate`). The cache is .gitignored.
export PYTHONDONTWRITEBYTECODE :=

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/runner: pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --extra test --python $(PYTHON)
	@touch $@

.PHONY: install test test-fast test-latest demo lint bench bench-quick lock lock-upgrade
install: $(BIN)/runner

test: lint
	$(BIN)/python -m pytest -q -n auto $(PYTEST_ARGS)

test-fast: lint
	$(BIN)/python -m pytest -q -n auto -m "not slow" $(PYTEST_ARGS)

demo: $(BIN)/runner
	$(BIN)/python examples/demo.py

lint: $(BIN)/runner
	$(BIN)/ruff check runner tests bench examples
	$(BIN)/ruff format --check runner
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile examples/app-promise/Dockerfile

# bench-quick (or BENCH_QUICK=1 make bench): every section once at its smallest size, to see
# that the bench still works; the suite runs it too (tests/test_bench.py).
bench: $(BIN)/runner
	$(BIN)/python bench/run.py

bench-quick: $(BIN)/runner
	BENCH_QUICK=1 $(BIN)/python bench/run.py

# uv.lock after an edit of pyproject.toml (keeps every other pin), or moved to the newest
# versions pyproject.toml allows (lock-upgrade). Commit a lock change on its own.
lock: | $(UV)
	$(UV) lock --python $(PYTHON)

lock-upgrade: | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

# The suite against the newest allowed versions, in a separate virtualenv, lock untouched.
test-latest: | $(UV)
	rm -rf .venv-latest
	$(UV) venv --quiet --python $(PYTHON) .venv-latest
	VIRTUAL_ENV=.venv-latest $(UV) pip install --quiet --upgrade -e '.[test]'
	@touch .venv-latest/bin/runner  # installed: keep the lock's sync out of it
	$(MAKE) test VENV=.venv-latest BIN=.venv-latest/bin
