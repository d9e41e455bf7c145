# Two commands do all the set-up on a fresh Debian machine:
#   make demo   install what is needed, record a real terminal session and render it to a video
#   make test   install what is needed, lint, and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make

# System packages the project starts for real: shells and the programs the session generators run,
# the pagers/editors/TUIs of the `interactive` generator, the font (also vendored) for tooling, and
# Tesseract for the paper's OCR metric.
APT_PACKAGES := bash coreutils findutils grep sed gawk git less vim nano procps tree bc \
                python3 fonts-dejavu-core ca-certificates tesseract-ocr tesseract-ocr-eng
# The desktop that `ncomp data collect-desktop` records (GUIWorld): a virtual X server, a real XFCE4
# session (window manager, panel, desktop, settings), the apps the policies use (terminal, file
# manager, editor, calculator), input and window tools, and the accessibility bus the scripted
# policy reads widget positions from.
APT_PACKAGES += xvfb xauth xfce4-session xfwm4 xfce4-panel xfdesktop4 xfce4-settings xfconf \
                xfce4-terminal thunar mousepad galculator xdotool dbus-x11 at-spi2-core python3-pyatspi \
                gir1.2-atspi-2.0 x11-utils wmctrl adwaita-icon-theme-full
# The runtime (`ncomp serve`): bubblewrap sandboxes the hybrid mode's real shell (no network, throwaway
# filesystem); Debian's Chromium is the browser the page tests drive through Playwright (never
# `playwright install`, which downloads a browser build).
APT_PACKAGES += bubblewrap util-linux chromium

.PHONY: all setup demo test lint pytest bench datasets clean

all: test

$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "apt-get install $$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "warning: no apt-get; install these yourself: $(APT_PACKAGES)"; fi
	@touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: the CPU wheel pinned in pyproject, never a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(STAMPS)/venv

demo: setup
	$(BIN)/ncomp demo

lint: setup
	$(BIN)/ruff check neuralcomputer tests benchmarks

# Two workers, one per core, each taking whole test files (a file's module fixtures are built once):
# most tests wait on a real shell, desktop or browser, or train on one thread. PYTEST_WORKERS=0 runs
# them in this process.
PYTEST_WORKERS ?= 2
pytest: setup
	$(BIN)/python -m pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

test: lint pytest

bench: setup
	$(BIN)/ncomp bench render
	$(BIN)/ncomp bench emulators | tail -1
	$(BIN)/ncomp bench train --threads 1
	$(BIN)/ncomp bench sample --threads 1
	$(BIN)/ncomp bench flops
	$(BIN)/ncomp bench collect
	$(BIN)/ncomp bench rollout --threads 1

# Both dataset variants at small scale: `general` from the real casts in ../shared, `clean` from
# freshly recorded sessions of every generator (SESSIONS per generator).
SESSIONS ?= 20
REAL_CASTS ?= ../shared/data/real-casts
GENERATORS := basic files text git python-math python interactive
datasets: setup
	$(BIN)/ncomp data render $(REAL_CASTS) --out datasets/general --workers 2
	for g in $(GENERATORS); do $(BIN)/ncomp data record --generator $$g --count $(SESSIONS) --seed 0 --out datasets/casts --workers 2 || exit 1; done
	$(BIN)/ncomp data render datasets/casts --out datasets/clean --variant clean --workers 2
	$(BIN)/ncomp data info datasets/general
	$(BIN)/ncomp data info datasets/clean

clean:
	rm -rf $(STAMPS) demo-out .pytest_cache .ruff_cache
