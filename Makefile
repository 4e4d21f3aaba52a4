# Two commands do everything on a fresh machine:
#   make train   -- the main job on the bundled digits data (no download), with live plots
#   make test    -- the whole test suite
# Both build .venv first. visdom 0.2.4 builds only with setuptools<81; the constraints file
# passes that to pip's isolated build and keeps torch at the release on this machine's disk.
PYTHON ?= python3
VENV := .venv
export PIP_CONSTRAINT := $(CURDIR)/.ci/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: train test env bench

$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	$(VENV)/bin/python -m pip install -q --no-deps d2l==1.0.3
	$(VENV)/bin/python -m pip install -q pandas requests matplotlib-inline ipython
	touch $@

env: $(VENV)/.installed

train: env
	$(VENV)/bin/d2l-ignite train $(ARGS)

test: env
	bash .ci/browser
	$(VENV)/bin/python -m pytest $(ARGS)

bench: env
	$(VENV)/bin/python -m bench $(ARGS)
