# The README's two commands are `make run` and `make test`; everything else is what they call.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-fast test-deps lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: the CPU build on this disk; an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

setup: $(VENV)/.installed

# `make run PORT=7861 HOST=0.0.0.0`: where the chat listens (the server prints "Serving ..." once it does).
PORT ?= 7860
HOST ?= 127.0.0.1
run: setup
	$(BIN)/assistant ingest corpus/
	$(BIN)/assistant serve --host $(HOST) --port $(PORT)

# The browser tests drive Debian's chromium with Playwright; never `playwright install` (no browser downloads).
# The shared rate-limit tests start Debian's redis-server on a loopback port (never a system service).
test-deps: setup
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium chromium-driver; \
	fi
	@if [ ! -x /usr/bin/redis-server ]; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends redis-server; \
	fi
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/pip install --quiet 'playwright>=1.49'

# Two pytest workers (pytest-xdist; one per core here). worksteal: an idle worker takes tests queued on the
# busy one, so no long file is left running alone at the end (253 s against 290 s with each file on one
# worker, which builds module fixtures once). `make test WORKERS=1` runs in one process.
WORKERS ?= 2
PYTEST_WORKERS = $(if $(filter 1,$(WORKERS)),,-n $(WORKERS) --dist worksteal)
test: test-deps
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS)

# Everything but the browser, the tests that start servers in subprocesses (chroma run, redis-server,
# assistant serve) and those that run the CLI or a build in a child process: the quick loop while editing.
# `make test` (CI's) still runs them all.
test-fast: setup
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m "not browser and not server and not subprocess"

# ruff and mypy are not project dependencies: installed on demand into the venv (their settings in
# pyproject.toml; the stubs mypy reads come with the dev extra). mypy checks assistant/.
lint: setup
	@$(BIN)/python -m ruff --version >/dev/null 2>&1 || $(BIN)/pip install --quiet ruff
	$(BIN)/python -m ruff check assistant tests bench
	@$(BIN)/python -m mypy --version >/dev/null 2>&1 || $(BIN)/pip install --quiet mypy
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) .pytest_cache
