# Two commands on a fresh Linux machine (Python 3.11+, root or Java 17 present):
#   make demo   run one hour of customer_enrichment on the embedded stack
#   make test   run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | md5sum | cut -c1-12)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test stop status lint format lock java postgres stack-prod stop-prod clean bench

NODE_STAMP := stack/node_modules/.installed
$(NODE_STAMP): stack/package.json
	@command -v npm >/dev/null 2>&1 || { echo "Azurite (Azure Blob emulator) needs Node.js 20 and npm: apt-get install nodejs npm"; exit 1; }
	npm install --prefix stack --no-audit --no-fund --loglevel=error
	touch $@

demo: $(STAMP) $(NODE_STAMP) java .env
	$(PY) -m stack demo

test: $(STAMP) $(NODE_STAMP) java postgres .env
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

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

bench: $(STAMP) $(NODE_STAMP) java .env
	$(PY) -m bench.pipeline
	$(PY) -m bench.replication

# Re-resolve the full lock after editing requirements*.txt.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile requirements-dev.txt -o constraints.txt --python $(PY) --no-header -q

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s)" % sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements-dev.txt -c constraints.txt
	rm -f $(VENV)/.installed-* && touch $@

java:
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Java 17 (openjdk-17-jre-headless) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; \
	  else \
	    echo "Spark needs Java 17+: install openjdk-17-jre-headless (or run make as root to let it use apt-get)"; exit 1; \
	  fi; }

# PostgreSQL and Redis from Debian (the warehouse tests and the production topology start
# throw-away servers on 127.0.0.1; installing starts nothing).
postgres:
	@{ ls /usr/lib/postgresql/*/bin/initdb && command -v redis-server; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing postgresql and redis-server with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql redis-server; \
	  else \
	    echo "Needs PostgreSQL and Redis server binaries: apt-get install postgresql redis-server (or run make as root)"; exit 1; \
	  fi; }

# The docker-compose topology (Postgres, Redis, Celery; separate Airflow processes) without Docker.
stack-prod: $(STAMP) $(NODE_STAMP) java postgres .env
	$(PY) -m stack up
	$(PY) -m stack.prod up

stop-prod: $(STAMP)
	$(PY) -m stack.prod down

.env:
	sed "s/^AIRFLOW_JWT_SECRET=$$/AIRFLOW_JWT_SECRET=$$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')/" .env.example > .env
	chmod 600 .env

clean: stop
	rm -rf .stack lake
