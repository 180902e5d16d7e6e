# The two commands of the README: `make up` runs the pipeline on the local stack, `make test` runs every test.
# Both install what they need first; re-running them is cheap once installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := .local
KINESIS_LOCAL_VERSION := 0.6.2
KINESIS_LOCAL := $(LOCAL)/kinesis-mock/node_modules/kinesis-local/main.js
ARGS ?=

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

test: install
	$(BIN)/pytest $(ARGS)

lint: install
	$(BIN)/pip install --quiet ruff==0.17.6 mypy==2.4.1 cfn-lint==1.58.0
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint cloudformation/*.yaml

clean:
	rm -rf $(VENV) $(LOCAL) .wikitide
