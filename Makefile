# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create or refresh .venv through `make venv` (a no-op when setup.cfg has not changed)
# and install the Debian packages below when they are missing.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# libgl1/libglib2.0-0: OpenCV (pulled in by MediaPipe) loads them at import;
# espeak-ng: the speech synthesizer of the embedded corpus (libespeak-ng through ctypes).
DEBIAN_PACKAGES := libgl1 libglib2.0-0 espeak-ng
DEMO_DIR := outputs/demo

.PHONY: venv system-deps test lint demo clean

venv: system-deps $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

system-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint: venv
	$(BIN)/ruff check .

test: venv lint
	$(BIN)/python -m pytest

CORPUS := $(DEMO_DIR)/corpus

demo: venv
	$(BIN)/python -m talkinghead.render.preview --out $(DEMO_DIR)
	$(BIN)/talkinghead-data synth --out $(CORPUS)
	$(BIN)/talkinghead-data inspect $(CORPUS) --sheet $(DEMO_DIR)/corpus_contact_sheet.png

clean:
	rm -rf outputs .pytest_cache .ruff_cache
