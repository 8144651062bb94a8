# Two commands on a fresh Linux machine (Python 3.11+, root or Java 17 present):
#   make demo   run one hour of customer_enrichment on the embedded stack
#   make test   run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | md5sum | cut -c1-12)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test suite-time stop status lint format lock java node build-deps test-deps stack-prod screenshots stop-prod clean bench

NODE_STAMP := stack/node_modules/.installed
$(NODE_STAMP): stack/package.json | node
	npm install --prefix stack --no-audit --no-fund --loglevel=error
	touch $@

# The demo times its own phases: make's prerequisites here (the Python venv ∥ Azurite from npm, Java
# after the venv's build deps, beside pip: both use apt-get, which takes one lock), then stack/__main__.py prints
# the table with the phases it ran itself (stack start, Airflow's first start, the hour, the summary).
demo:
	@t0=$$(date +%s.%N); \
	$(MAKE) --no-print-directory --output-sync=target -j4 $(STAMP) $(NODE_STAMP) java .env || exit $$?; \
	TRICLOUD_DEMO_CLOCK="install (venv ∥ npm ∥ Java):$$t0:$$(date +%s.%N)" $(PY) -m stack demo

# The suite, the screenshots and the benchmarks build a world of their own (stack/world.py: own ports,
# emulators, buckets, Spark, Airflow home, lake) and never read .env; they refuse to start when a
# connection exported in the shell is not on 127.0.0.1.
# Each run leaves its JUnit file in .stack/; `make suite-time` records its per-module times into
# bench/results/suite.{json,md} (LABEL=... names the run, default full-run).
TEST_JUNIT ?= .stack/pytest-junit.xml
test: $(STAMP) $(NODE_STAMP) java test-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest --junitxml=$(TEST_JUNIT)

suite-time: $(STAMP)
	$(PY) -m bench.suite_time $(TEST_JUNIT) --label $(or $(LABEL),full-run)

stop: $(STAMP)
	$(PY) -m stack down

status: $(STAMP)
	$(PY) -m stack status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Refresh the README's screenshots (docs/screenshots/) from the browser test against a real stack.
screenshots: $(STAMP) $(NODE_STAMP) java test-deps
	TRICLOUD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/e2e/test_ui_and_cli.py -k WebUI

bench: $(STAMP) $(NODE_STAMP) java
	$(PY) -m bench.pipeline
	$(PY) -m bench.replication

# Re-resolve the full lock after editing requirements*.txt.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile requirements-dev.txt -o constraints.txt --python $(PY) --no-header -q

$(STAMP): requirements.txt requirements-dev.txt constraints.txt | build-deps
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s)" % sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements-dev.txt -c constraints.txt
	rm -f $(VENV)/.installed-* && touch $@

# Debian packages, installed with apt-get only when missing (as root), with one message otherwise.
# $(call apt,<binary or file to check>...,<packages>,<what needs them>)
define apt
	@missing=0; for f in $(1); do [ -e "$$f" ] || command -v "$$f" >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing $(2) with apt-get ($(3))"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) >/dev/null; \
	  else \
	    echo "$(3) needs: apt-get install $(2) (or run make as root to let it use apt-get)"; exit 1; \
	  fi; \
	fi
endef

# Spark needs a JRE; mysqlclient (MySQL/MariaDB warehouse hook) compiles against libmariadb.
# Java after the build deps (apt-get takes one lock), so under `make -j` it installs while pip does.
java: | build-deps
	$(call apt,java,openjdk-17-jre-headless,Spark)

# Azurite (the Azure Blob emulator) runs on Node.js 20+; after Java, for the same apt-get lock.
node: | java
	$(call apt,npm,nodejs npm,Azurite: the Azure Blob emulator)

build-deps:
	$(call apt,pkg-config /usr/bin/mariadb_config,pkg-config libmariadb-dev,mysqlclient)

# Servers the tests start as throw-away processes on 127.0.0.1 (installing starts nothing):
# PostgreSQL and MariaDB (warehouse, production topology), Redis (Celery broker), and Chromium with
# its driver (browser test of the web UI).
test-deps:
	$(call apt,$(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) /usr/lib/postgresql/bin/initdb) redis-server /usr/sbin/mariadbd /usr/bin/chromium /usr/bin/chromedriver,postgresql redis-server mariadb-server chromium chromium-driver,the test suite)

# The docker-compose topology (Postgres, Redis, Celery; separate Airflow processes) without Docker.
stack-prod: $(STAMP) $(NODE_STAMP) java test-deps .env
	$(PY) -m stack up
	$(PY) -m stack.prod up

stop-prod: $(STAMP)
	$(PY) -m stack.prod down

.env:
	sed "s/^AIRFLOW_JWT_SECRET=$$/AIRFLOW_JWT_SECRET=$$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')/" .env.example > .env
	chmod 600 .env

clean: stop
	rm -rf .stack lake
