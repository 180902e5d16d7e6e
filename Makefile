# The two commands of the README: `make up` runs the pipeline on the local stack, `make test` runs every test.
# Both install what they need first; re-running them is cheap once installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := .local
KINESIS_LOCAL_VERSION := 0.6.2
KINESIS_LOCAL := $(LOCAL)/kinesis-mock/node_modules/kinesis-local/main.js
ARGS ?=
# Parallel test processes (pytest-xdist, one test file per unit; see tests/conftest.py): the fleet's two files
# and the end-to-end test start first, one per process, and a fourth process takes the rest from the start.
# Most of the suite waits on JVMs and emulators rather than computing, so four fit a 2-core machine.
TEST_WORKERS ?= 4
TEST_TOOLS := pytest-xdist==3.8.0
LINT_TOOLS := ruff==0.17.6 mypy==2.4.1 cfn-lint==1.58.0

.PHONY: install up test lint clean system-deps

install: system-deps $(BIN)/.installed $(KINESIS_LOCAL)

system-deps:
	@bash scripts/install-system-deps.sh

$(BIN)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(KINESIS_LOCAL):
	mkdir -p $(LOCAL)/kinesis-mock
	npm install --silent --no-audit --no-fund --prefix $(LOCAL)/kinesis-mock kinesis-local@$(KINESIS_LOCAL_VERSION)

up: install
	$(BIN)/wikitide local up $(ARGS)

$(BIN)/.test-tools: $(BIN)/.installed Makefile
	$(BIN)/pip install --quiet $(TEST_TOOLS)
	touch $@

$(BIN)/.lint-tools: $(BIN)/.installed Makefile
	$(BIN)/pip install --quiet $(LINT_TOOLS)
	touch $@

# `make test ARGS="tests/unit"` runs a part; `make test TEST_WORKERS=0` runs in one process.
test: install $(BIN)/.test-tools
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

lint: install $(BIN)/.lint-tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint cloudformation/*.yaml

clean:
	rm -rf $(VENV) $(LOCAL) .wikitide
