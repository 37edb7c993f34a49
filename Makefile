# durable-django: make run (demo), make test (what CI runs), make lint, make bench, make chaos.
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
PORT ?= 8000
FRONTEND := apps/collab_doc/frontend

.PHONY: install run cluster test lint format bench bench-quick chaos simulate system-packages docs

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV) || \
		{ sh scripts/system-packages.sh python3-venv && $(PY) -m venv $(VENV); }
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PYTHON) manage.py migrate --noinput
	$(PYTHON) manage.py demo_superuser
	$(PYTHON) manage.py runserver --noreload 127.0.0.1:$(PORT)

cluster: install
	$(PYTHON) manage.py migrate --noinput
	$(PYTHON) manage.py demo_superuser
	$(PYTHON) manage.py runcluster --port $(PORT)

# System packages the tests need (redis-server >= 7, chromium, fonts, node, npm), each
# installed only when missing: as root or through sudo, else a message saying what to install.
# What make test needs from the system (redis-server 7+, chromium, fonts, nodejs, npm),
# installed with apt-get where missing (as root or through sudo); SKIP_SYSTEM_PACKAGES=1 skips.
system-packages:
	sh scripts/system-packages.sh

test: install system-packages $(FRONTEND)/node_modules/.installed
	$(PYTHON) -m pytest

# The documentation site (mkdocs.yml, docs/) into site/; any warning fails the build.
# docs/contract.md is refreshed from the project's shared contract where it is present.
$(VENV)/.docs-installed: pyproject.toml $(VENV)/.installed
	$(PYTHON) -m pip install -q -e ".[docs]"
	touch $@

docs: install $(VENV)/.docs-installed
	if [ -f ../shared/CONTRACT.md ]; then cp ../shared/CONTRACT.md docs/contract.md; fi
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every bench/*.py, then bench/RESULTS.md and bench/plots/*.png; ONLY=a,b picks some.
bench: install
	$(PYTHON) bench/run.py $(if $(ONLY),--only $(ONLY))

bench-quick: install
	$(PYTHON) bench/run.py --quick $(if $(ONLY),--only $(ONLY))

# The collaborative editor's browser bundle (committed, so `make run` needs no Node);
# the interop tests drive stock yjs + y-websocket from the same node_modules.
$(FRONTEND)/node_modules/.installed: $(FRONTEND)/package-lock.json | system-packages
	cd $(FRONTEND) && npm ci --no-audit --no-fund
	touch $@

.PHONY: assets
assets: $(FRONTEND)/node_modules/.installed
	cd $(FRONTEND) && npm run build

# Fault injection with the history checker and the single-owner audit (tests/chaos);
# CHAOS_SECONDS=N sets the faulty period (default 180), CHAOS_SEED=S the schedule.
CHAOS_SECONDS ?= 180
CHAOS_SEED ?= 1
chaos: install
	$(PYTHON) -m tests.chaos --seconds $(CHAOS_SECONDS) --seed $(CHAOS_SEED)

# The seeded in-process simulation (durable_core/testing/simulation.py): seeds
# FIRST..FIRST+SEEDS-1, cluster shapes drawn from each seed, each replayable with
# `PYTHONHASHSEED=0 manage.py simulate --vary --seed N --trace`.
SEEDS ?= 1000
FIRST ?= 1
simulate: install
	PYTHONHASHSEED=0 $(PYTHON) manage.py simulate --vary --seeds $(SEEDS) --first $(FIRST)
