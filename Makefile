# Two commands on a fresh machine: `make console` (the bot, locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: console test test-fast lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

console: $(BIN)/.installed
	$(BIN)/pgdb-bot console

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

# The use cases over in-memory fakes and every other test that needs no PostgreSQL and no
# server (tests/conftest.py marks the others `server`): under a minute.
test-fast: $(BIN)/.installed
	$(BIN)/pytest -q -m "not server"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
