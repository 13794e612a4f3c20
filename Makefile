# Two entry points: `make demo` and `make test`. Both create .venv and install
# what they need; nothing relies on a hand-installed package.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip -q --disable-pip-version-check
# torch/torchvision are pinned to the builds on this project's machines' local disk.
TORCH   ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: all env demo test test-fast bench gpu nano-weights clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH)
	$(PIP) install -e '.[export,ort,dev,trt-lean]'  # trt-lean: the real TensorRT 11 runtime bindings for API tests
	touch $@

env: $(VENV)/.installed

demo: env
	$(VENV)/bin/edgedet demo --out demo-output

test: env
	$(PY) -m pytest -q $(PYTEST_ARGS) --cov --cov-report=term

test-fast: env
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Regenerate the synthetic data and retrain nano's shipped weights (about 27 min on 2 quiet cores).
nano-weights: env
	$(PY) -m exporters.nano.train

bench: env
	$(PY) benchmarks/run_all.py --out benchmarks/results

clean:
	rm -rf $(VENV) demo-output .pytest_cache .coverage
