# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Needs Python 3.11+, Java 17 and Maven. Steps already done are skipped (stamp files).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JARS := .jars
PYSPARK_VERSION := 4.1.1
# The Kinesis Client Library for Python; its daemon jars are pinned in pom.xml (profile kcl).
KCLPY_VERSION := 3.1.3
# pyspark 4.1.1 is published as a ~450 MB source archive; its built wheel is kept here so
# that a new checkout or a rebuilt virtualenv does not build it again.
WHEEL_CACHE ?= $(HOME)/.cache/streamlake/wheels
PYTEST_ARGS ?=

.PHONY: setup browser postgres infra-tools demo test test-unit soak lint format bench audit clean distclean

setup: $(VENV)/.installed $(JARS)/.resolved

$(VENV)/.installed: pyproject.toml $(JARS)/kcl/.resolved
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@mkdir -p $(WHEEL_CACHE)
	@ls $(WHEEL_CACHE)/pyspark-$(PYSPARK_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building the pyspark $(PYSPARK_VERSION) wheel once (about 450 MB) into $(WHEEL_CACHE)"; \
	  $(BIN)/pip wheel --quiet --no-deps --wheel-dir $(WHEEL_CACHE) pyspark==$(PYSPARK_VERSION); }
	@# amazon-kclpy is published as a source archive whose build fetches the KCL daemon's
	@# jars itself; pointed at the folder Maven filled (profile kcl), it fetches nothing.
	@ls $(WHEEL_CACHE)/amazon_kclpy-$(KCLPY_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building the amazon-kclpy $(KCLPY_VERSION) wheel once from the Maven-resolved KCL jars"; \
	  KCL_MVN_REPO_SEARCH_URL=file://$(abspath $(JARS))/kcl/ \
	    $(BIN)/pip wheel --quiet --no-deps --wheel-dir $(WHEEL_CACHE) amazon-kclpy==$(KCLPY_VERSION); }
	@echo "installing Python packages into $(VENV)"
	@$(BIN)/pip install --quiet --find-links $(WHEEL_CACHE) -e '.[dev]'
	@touch $@

# The KCL daemon's jars, in Maven's repository layout (amazon-kclpy's build reads them).
$(JARS)/kcl/.resolved: pom.xml
	@command -v mvn >/dev/null || { echo "Maven (mvn) is needed to fetch the JVM jars"; exit 2; }
	@echo "resolving the Kinesis Client Library jars with Maven into $(JARS)/kcl"
	@rm -rf $(JARS)/kcl
	@mvn --quiet --batch-mode -P kcl package
	@touch $@

$(JARS)/.resolved: pom.xml jvm/pom.xml $(wildcard jvm/src/main/java/dev/streamlake/delta/*.java)
	@command -v mvn >/dev/null || { echo "Maven (mvn) is needed to fetch the JVM jars"; exit 2; }
	@echo "resolving JVM jars with Maven into $(JARS)/"
	@rm -rf $(JARS)/spark $(JARS)/kafka
	@mvn --quiet --batch-mode -P spark package
	@mvn --quiet --batch-mode -P kafka package
	@mvn --quiet --batch-mode -f jvm/pom.xml package
	@touch $@

demo: setup postgres
	$(BIN)/streamlake demo

test: setup browser postgres infra-tools
	$(BIN)/pytest $(PYTEST_ARGS)

# The report's browser test drives Debian's chromium (Playwright downloads no browser).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the report's browser test"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || { \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }; }

# The PostgreSQL server binaries (initdb, postgres) that `local up` and the tests start for
# the pipeline's jdbc sources: Debian's postgresql package, when they are not there.
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the jdbc sources' local database"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 || { \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql; }; }

# checkov, for the policy checks of infra/ the tests run: in a virtualenv of its own, as
# its pinned dependencies would clash with the project's.
INFRA_VENV := .venv-infra
CHECKOV_VERSION := 3.3.30
infra-tools: $(INFRA_VENV)/.installed

$(INFRA_VENV)/.installed:
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	@echo "installing checkov $(CHECKOV_VERSION) into $(INFRA_VENV) for infra/'s policy checks"
	@$(INFRA_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	@touch $@

test-unit: setup infra-tools
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The long crash scenarios (more kill rounds, every fault point, every source kind), then
# the chaos soak, which writes its figures to docs/reliability.md.
soak: setup postgres
	$(BIN)/pytest -m soak $(PYTEST_ARGS)
	$(BIN)/python -m tests.chaos

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup postgres
	$(BIN)/python -m bench

# Known vulnerabilities in the installed Python packages (the project itself skipped).
audit: setup
	$(BIN)/pip-audit --skip-editable --progress-spinner off

clean:
	rm -rf .streamlake .pytest_cache .mypy_cache .ruff_cache target

distclean: clean
	rm -rf $(VENV) $(JARS) $(INFRA_VENV)
