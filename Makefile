# ganforge: `make test` and `make demo` create .venv when missing and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ganforge-installed
DEMO_STAMP := $(VENV)/.ganforge-demo-installed

.PHONY: install test demo bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes; the package itself is editable.
# The test extras (pytest, the serve, audio and diffusion stacks): for `make test`.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing ganforge with its test extras (several minutes the first time)..."
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo only runs `ganforge data fetch` and `ganforge train`: ganforge and its dependencies,
# no extras. Nothing to install when `make test` has installed them (its extras hold them).
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	@if [ ! $(STAMP) -nt pyproject.toml ]; then \
	    echo "installing ganforge (a few minutes the first time)..." && \
	    $(BIN)/python -m pip install --quiet --upgrade pip && \
	    $(BIN)/python -m pip install --quiet -e . ; \
	fi
	touch $(DEMO_STAMP)

install: $(STAMP)

# Lint first: a lint failure fails `make test` (and CI) before the suite runs.
test: $(STAMP)
	$(BIN)/python -m ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q -n logical --durations=20

demo: $(DEMO_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean-venv:
	rm -rf $(VENV)
