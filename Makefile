# Two entry points, each doing all of its own set-up on a fresh machine:
#   make demo   build the embedded default (tiny LM + generated TextWorld game), train, evaluate
#   make test   run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PRIORZERO_GAMES ?= $(abspath ../shared/games)
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install benchmarks clean

install: $(STAMP)

# torch is pinned first: it is the CPU wheel on this disk; an unpinned torch pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m priorzero_pl demo --config configs/debug.yaml

test: $(STAMP)
	$(PY) -m pytest -q

benchmarks: $(STAMP)
	$(PY) benchmarks/envs.py
	$(PY) benchmarks/mcts.py
	$(PY) benchmarks/prior.py
	$(PY) benchmarks/learning.py

clean:
	rm -rf .priorzero lightning_logs runs
