# Two entry points, each doing all of its own set-up on a fresh machine:
#   make demo   build the embedded default (tiny LM + generated TextWorld game), train, evaluate
#   make test   run the test suite
# and three for GPUs:
#   make gpu-install  the venv plus the [vllm,deepspeed] extras (vLLM 0.32 + torch 2.13) on a CUDA machine
#   make gpu-wheels   here, with network: download/build into .gpu-wheels/ what the GPU check machine lacks
#   make gpu-check    there, offline: install from .gpu-wheels/, then run benchmarks/gpu_check.py
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PRIORZERO_GAMES ?= $(abspath ../shared/games)
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install benchmarks clean gpu-install gpu-wheels gpu-check

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

gpu-install: $(STAMP)
	$(PY) -m pip install -q -e '.[vllm,deepspeed]'

# The GPU check machine has Python 3.12 with torch, lightning, transformers, numba, numpy,
# tensorboard and torchmetrics, and no network: everything else travels in .gpu-wheels/ (64 MiB in
# all with the working tree). jericho and deepspeed are sdists, built here into wheels.
GPU_WHEELS        ?= .gpu-wheels
GPU_PYTHON        ?= python3
GPU_PYTHON_VERSION ?= 3.12
GPU_PLATFORMS     := --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64

gpu-wheels: $(STAMP)
	rm -rf $(GPU_WHEELS) && mkdir -p $(GPU_WHEELS)
	$(PY) -m pip wheel -q --no-deps -w $(GPU_WHEELS) jericho==3.3.1 deepspeed==0.19.8
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) $(GPU_PLATFORMS) \
		-d $(GPU_WHEELS) -r benchmarks/gpu_check_wheels.txt
	du -sh $(GPU_WHEELS)
	test $$(du -sk $(GPU_WHEELS) | cut -f1) -lt 50000  # leaves room in 64 MiB for the working tree

# pip may call the image's Python "externally managed"; the check machine is thrown away after.
gpu-check:
	PIP_BREAK_SYSTEM_PACKAGES=1 $(GPU_PYTHON) -m pip install -q --no-index --find-links $(GPU_WHEELS) \
		--no-deps jericho==3.3.1 textworld==1.7.0
	PIP_BREAK_SYSTEM_PACKAGES=1 $(GPU_PYTHON) -m pip install -q --no-index --find-links $(GPU_WHEELS) \
		-r benchmarks/gpu_check_requirements.txt
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)
