# Two commands do all the set-up: `make demo` starts the demo, `make test` runs the tests.
# `make demo` serves on HOST and PORT from the environment or .env (default 127.0.0.1:8000).
# Both create .venv and install the pinned requirements first (a no-op when already done).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test browser-deps

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

install: $(VENV)/installed

demo: install
	$(PY) app.py

# Debian's Chromium for the browser test (never `playwright install`: no browser downloads here).
browser-deps:
	@(command -v chromium >/dev/null && dpkg -s fonts-dejavu-core >/dev/null 2>&1) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core)

test: install browser-deps
	$(PY) -m pytest -q
