"""Fixtures for the TensorRT tests: fake engines with manifests, and the fakes wired into the
backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import trt_fakes  # noqa: E402
from trt_fakes import tensorrt_section, write_engine  # noqa: E402


@pytest.fixture
def fake_gpu():
    return trt_fakes.FakeGPU()


@pytest.fixture
def fake_trt(monkeypatch, fake_gpu):
    """The backend wired to the fakes (see trt_fakes for the documented behaviour each models)."""
    import edgedet.backends.tensorrt as backend_mod
    from edgedet.trt import plugins
    from edgedet.trt.cuda import Cuda
    from edgedet.trt.loader import TensorRT
    from edgedet.trt.version import TRTVersion

    module = trt_fakes.FakeTRTModule(fake_gpu)
    cudart = trt_fakes.FakeCudart(fake_gpu)
    monkeypatch.setattr(
        backend_mod,
        "import_tensorrt",
        lambda: TensorRT(module, "tensorrt", TRTVersion.parse(module.__version__), "full"),
    )
    monkeypatch.setattr(backend_mod, "Cuda", lambda: Cuda(cudart))
    monkeypatch.setattr(plugins, "_LOADED", {})
    monkeypatch.setenv("EDGEDET_CACHE_DIR", str(Path(__file__).parent / "_no_such_cache"))
    module.cudart = cudart
    return module


@pytest.fixture
def fake_engine(tmp_path):
    """A dynamic-batch fake engine (profile 1,2,4) with a matching manifest."""
    return write_engine(
        tmp_path / "fake.engine", trt_fakes.plan_bytes((1, 2, 4)), tensorrt_section()
    )
