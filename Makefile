# Two commands do everything on a fresh machine:
#   make train   -- the main job on the bundled digits data (no download), with live plots
#   make test    -- the whole test suite
# Both build .venv first. visdom 0.2.4 builds only with setuptools<81; the constraints file
# passes that to pip's isolated build and keeps torch at the release on this machine's disk.
PYTHON ?= python3
VENV := .venv
export PIP_CONSTRAINT := $(CURDIR)/.ci/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PIP := $(VENV)/bin/python -m pip install -q --no-warn-conflicts

.PHONY: train test check figures env test-env bench compat gpu-check

# the main job's needs only
$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# tests and benchmarks: pytest, a notebook kernel, and the book's own d2l 1.0.3 as the reference
# (--no-deps: its pins, e.g. numpy==1.23.5, are for the book's notebooks, not for this check)
$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps d2l==1.0.3
	touch $@

env: $(VENV)/.installed
test-env: $(VENV)/.test-installed

train: env
	$(VENV)/bin/d2l-ignite train $(ARGS)

test: test-env
	bash .ci/browser
	$(VENV)/bin/python -m pytest --durations=15 $(ARGS)

# the inner loop: every module, without the tests marked slow (several processes, browsers, DDP)
check: test-env
	bash .ci/browser
	$(VENV)/bin/python -m pytest -m "not slow" $(ARGS)

# the README's picture, from the default run (the main job with its defaults)
figures: env
	rm -rf runs/readme
	D2L_IGNITE_PLOT=1 $(VENV)/bin/d2l-ignite train --out runs/readme --no-keep-serving
	cp runs/readme/curves.png docs/curves.png

bench: test-env
	$(VENV)/bin/python -m bench $(ARGS)

# the wheel installed on every Python 3.10-3.13 found here (pyenv), each in a venv of its own kept in
# ~/.cache/d2l-compat: the main job, a Visdom round trip, the README and the non-slow tests; a table.
# Long (a first run fetches torch for each Python); not part of `make test`.
compat: test-env
	bash .ci/browser
	$(VENV)/bin/python .ci/compat.py $(ARGS)

# the prepared check for a lent GPU (no venv: the GPU machine's own Python and torch, plus the wheels in
# .whl/ that `python3 -m bench.gpu_check --fetch-wheels 3.12` downloads here); report in $(OUT) or ./gpu-check
gpu-check:
	$(PYTHON) -m bench.gpu_check $(OUT) $(ARGS)
