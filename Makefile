# Two commands on a fresh machine: `make console` (the bot, locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Exact versions of every dependency (see its header); CI and the Dockerfile use it too.
CONSTRAINTS := constraints.txt
# Parallel pytest workers (pytest-xdist). The suite mostly waits on subprocesses and servers,
# so more workers than cores pays off; each has its own name prefix on the test server.
TEST_JOBS ?= 4

.PHONY: console test test-fast lint bench clean constraints

# Quiet (@): `make console`'s first screen is the bot's, not make's commands. Options pass
# through ARGS, e.g. `make console ARGS=--reset`.
$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	@echo "Installing pgdb-bot and its pinned dependencies into $(VENV) (once)..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip -c $(CONSTRAINTS)
	@$(BIN)/pip install --quiet -e '.[dev]' -c $(CONSTRAINTS) > $(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; exit 1; }  # the build backend's notices only on failure
	@touch $@

console: $(BIN)/.installed
	@$(BIN)/pgdb-bot console $(ARGS)

# The linters, in turn: `make lint`, and `make test` beside the tests.
LINT = $(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

lint: $(BIN)/.installed
	$(LINT)

# Bytecode is written (it is git-ignored) even where PYTHONDONTWRITEBYTECODE is set: otherwise
# every worker rewrites every test module's asserts and each bot subprocess recompiles the bot.
# The linters run beside the tests, at a lower priority: the tests often wait (on subprocesses,
# servers, timeouts) and the linters' half a minute fits in those gaps. Their report is shown
# when they fail (after the tests' summary), and either failing fails `make test`.
test: $(BIN)/.installed
	@lint_log="$$(mktemp)"; \
	nice -n 10 sh -c '$(LINT)' >"$$lint_log" 2>&1 & lint_pid=$$!; \
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n $(TEST_JOBS) --dist worksteal; tests=$$?; \
	wait $$lint_pid; linted=$$?; \
	if [ $$linted -ne 0 ]; then cat "$$lint_log"; echo "make test: lint failed (make lint)" >&2; fi; \
	rm -f "$$lint_log"; \
	[ $$tests -eq 0 ] && [ $$linted -eq 0 ]

# Re-resolve constraints.txt: the newest versions pyproject.toml allows, in a scratch venv.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet --upgrade pip
	.venv-constraints/bin/pip install --quiet -e '.[dev]'
	{ grep '^#' $(CONSTRAINTS); .venv-constraints/bin/pip freeze --all --exclude-editable \
	  | grep -v '^setuptools=='; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .venv-constraints

# The use cases over in-memory fakes and every other test that needs no PostgreSQL and no
# server (tests/conftest.py marks the others `server`): under a minute.
test-fast: $(BIN)/.installed
	$(BIN)/pytest -q -m "not server"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
