# bdc-hub: two commands on a fresh Debian machine.
#   make demo   create .venv, install, run the demo on the embedded default
#   make test   install test needs, start real servers on loopback, run all tests, stop them
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-tiers unit integration lint bench install clean i18n nodered

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "bdc-hub needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools>=77' wheel
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

# The end-to-end demo: simulated departments, the hub on the embedded SQLite
# broker and store, and sample applications of six kinds (see docs/flows.md).
demo: $(VENV)/.installed
	$(BIN)/hub demo

# Servers are started by tools/services.py around the tiers and stopped even
# when a tier fails; their URLs reach the tests as HUB_TEST_*_URL.
test: $(VENV)/.installed nodered
	$(BIN)/python tools/services.py ensure
	$(BIN)/python tools/services.py run -- $(MAKE) --no-print-directory test-tiers

# Every tier runs even when an earlier one fails, so one run shows everything.
test-tiers:
	@rc=0; \
	$(MAKE) --no-print-directory lint || rc=1; \
	$(MAKE) --no-print-directory unit || rc=1; \
	$(MAKE) --no-print-directory integration || rc=1; \
	exit $$rc

# Node-RED 4 is the peer the HTTP route is compared with (bench and its smoke test).
nodered:
	@if [ ! -d bench/nodered/node_modules ]; then \
	  if command -v npm >/dev/null; then \
	    npm ci --prefix bench/nodered --no-audit --no-fund --silent || echo "Node-RED not installed: its cases will be skipped"; \
	  else echo "npm not found: Node-RED cases will be skipped"; fi; \
	fi

# ruff, then the floors of the house (.importlinter: layers, no cycles).
lint:
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# pytest exits 5 when a tier selects no test; that is not a failure of the tier.
unit:
	$(BIN)/python -m pytest -m "not integration" -q -p no:cacheprovider || [ $$? -eq 5 ]

integration:
	$(BIN)/python -m pytest -m integration -q -p no:cacheprovider || [ $$? -eq 5 ]

bench: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python tools/services.py ensure
	$(BIN)/python tools/services.py run -- $(BIN)/python bench/run.py

i18n: $(VENV)/.installed
	$(BIN)/python tools/i18n_check.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
