# ydc — YOLO Dataset Creator. GNU make.
#
#   make run     create .venv if needed, install, start the server (http://127.0.0.1:8000)
#   make test    install, Chromium, import contracts, ruff, pytest, then the browser tests
#
# Nothing may reach the internet at run time (Ultralytics would otherwise check for updates,
# download fonts or auto-install packages).
export YOLO_OFFLINE=1
export YOLO_AUTOINSTALL=0

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sudo only when not already root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
CHROMIUM := /usr/bin/chromium
LINT_PATHS := app tests migrations bench

.PHONY: all install chromium migrate run test lint bench clean

all: test

install: $(STAMP)

# The stamp is newer than pyproject.toml once everything is installed, so a second
# `make install` does nothing. torch is not pinned: pip resolves ultralytics with the
# registry's torch. pip's download cache stays on so a reinstall does not fetch again.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

# Debian's Chromium for the Playwright browser tests (Playwright's own download does not
# work here); conftest.py points Playwright at $(CHROMIUM).
chromium:
	@if [ -x $(CHROMIUM) ]; then \
		echo "chromium: $(CHROMIUM) present"; \
	else \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi

migrate: install
	$(BIN)/ydc migrate

# The CLI migrates at start; host and port come from YDC_HOST / YDC_PORT.
run: install
	$(BIN)/ydc serve

# The browser tests are their own pytest invocation: pytest-playwright leaves an event loop
# running that breaks async tests collected after it. pyproject's addopts deselects e2e.
test: install chromium
	$(BIN)/lint-imports
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/pytest -q --durations=15
	$(BIN)/pytest -q -m e2e --durations=5

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy app

bench: install
	@for f in bench/*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; \
		$(BIN)/python "$$f"; \
	done

# Removes the venv and caches; never storage/.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-results *.egg-info
	find . \( -path ./storage -o -path ./.git \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
