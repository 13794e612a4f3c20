# Two entry points: `make demo` and `make test`. Both create .venv and install
# what they need; nothing relies on a hand-installed package.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip -q --disable-pip-version-check
# torch/torchvision are pinned to the builds on this project's machines' local disk.
TORCH   ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# `edgedet serve` runs the real Triton server from nvidia-pytriton, which pins numpy<2: it gets its own
# environment, and its tests run there on a nano ONNX file exported with the main environment.
SERVE_VENV  ?= .venv-serve
SERVE_PY     = $(SERVE_VENV)/bin/python
SERVE_MODEL  = .edgedet-cache/serve-test/nano.onnx

.PHONY: all env serve-env demo lint test test-serve test-fast bench gpu nano-weights clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH)
	$(PIP) install -e '.[export,ort,dev,trt-lean]'  # trt-lean: the real TensorRT 11 runtime bindings for API tests
	touch $@

env: $(VENV)/.installed

$(SERVE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_PY) -m pip -q --disable-pip-version-check install --upgrade pip
	$(SERVE_PY) -m pip -q --disable-pip-version-check install -e '.[ort,serve]' pytest onnx
	touch $@

serve-env: $(SERVE_VENV)/.installed

$(SERVE_MODEL): $(VENV)/.installed exporters/nano/weights/nano.pt
	$(VENV)/bin/edgedet export --model nano --dynamic-batch -o $@

test-serve: serve-env $(SERVE_MODEL)
	EDGEDET_SERVE_MODEL=$(SERVE_MODEL) $(SERVE_PY) -m pytest -q $(PYTEST_ARGS) tests/serve

# ruff with the rules and the 100-column limit pyproject.toml sets; .ci/run runs it before the tests
lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: env
	$(VENV)/bin/edgedet demo --out demo-output

# the serve tests (their own numpy<2 venv) first, so the last summary line is the main suite's
test: env serve-env $(SERVE_MODEL)
	EDGEDET_SERVE_MODEL=$(SERVE_MODEL) $(SERVE_PY) -m pytest -q $(PYTEST_ARGS) tests/serve
	$(PY) -m pytest -q $(PYTEST_ARGS) --ignore=tests/serve --durations=25 --cov --cov-report=term

test-fast: env
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) --ignore=tests/serve

# Regenerate the synthetic data and retrain nano's shipped weights (about 27 min on 2 quiet cores).
nano-weights: env
	$(PY) -m exporters.nano.train

# the CPU benchmarks that need only this repository (benchmarks/run_all.py says which); results in BENCH_OUT
BENCH_OUT ?= bench-output
bench: env
	$(PY) benchmarks/run_all.py --out $(BENCH_OUT)

# on a machine with an NVIDIA GPU and nvcc: CUDA builds, cuda-marked tests, GPU benchmarks (its own python3)
GPU_OUT ?= gpu-output
gpu:
	OUT=$(abspath $(GPU_OUT)) PYTHON=$(PYTHON) bash benchmarks/gpu/run.sh

clean:
	rm -rf $(VENV) $(SERVE_VENV) demo-output .pytest_cache .coverage
