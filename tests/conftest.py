import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))  # tiny model builders

import tiny_models  # noqa: E402

# ultralytics (a test-only dependency) must never pip-install plugins while tests run
os.environ.setdefault("YOLO_OFFLINE", "1")


from PIL import Image as _PILImage  # noqa: E402

# Pillow's own, taken before any test module (and ultralytics) is imported
_PIL_OPEN = _PILImage.open


@pytest.fixture(autouse=True)
def _undo_ultralytics_patches():
    """Importing ultralytics replaces PIL.Image.open process-wide (unidentified files are retried
    after installing a HEIF plugin), which turns read_image's clear errors into ModuleNotFoundError
    in every later test - even tests run before it, when a test module imports it at collection:
    give each test Pillow's own open, and put it back afterwards."""
    _PILImage.open = _PIL_OPEN
    yield
    _PILImage.open = _PIL_OPEN


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    """Skip cuda/trt tests with the reason when the machine lacks them."""
    from edgedet.doctor import gpu_info, tensorrt_info

    gpus = gpu_info()
    trt = tensorrt_info()
    no_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU (nvidia-smi shows none on this machine)")
    no_trt = pytest.mark.skip(
        reason=(
            "needs full TensorRT with a GPU (tensorrt:"
            f" {trt['error'] or 'lean runtime only, no Builder'}; GPUs: {len(gpus)})"
        )
    )
    for item in items:
        # markers only: "trt"/"cuda" in item.keywords would also match folder names (tests/*/trt/)
        if item.get_closest_marker("cuda") and not gpus:
            item.add_marker(no_gpu)
        if item.get_closest_marker("trt") and not (gpus and trt["builder"]):
            item.add_marker(no_trt)


@pytest.fixture
def tiny_nms(tmp_path) -> Path:
    return tiny_models.save(tiny_models.nms_model(), tmp_path / "tiny_nms.onnx")


@pytest.fixture
def tiny_raw(tmp_path) -> Path:
    return tiny_models.save(tiny_models.raw_model(), tmp_path / "tiny_raw.onnx", kind="raw")


@pytest.fixture
def rgb_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)


@pytest.fixture
def image_dir(tmp_path, rgb_image) -> Path:
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(rgb_image).save(d / "a.png")
    Image.fromarray(rgb_image[:, ::-1]).save(d / "b.jpg")
    return d


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """The tiny torch detector exported raw (NMS on the host): path to its ONNX file."""
    pytest.importorskip("torch")
    from tiny_torch import register_tiny

    from exporters.pipeline import ExportOptions, export

    register_tiny()
    out = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export(ExportOptions(model="tiny", nms="none"), out)
    return out


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory):
    """Twelve small structured images (gradients + blocks) for calibration."""
    from PIL import Image

    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(12):
        img = np.zeros((60, 80, 3), np.uint8)
        img[:] = np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None]
        y, x = rng.integers(0, 40, 2)
        img[y : y + 20, x : x + 30] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(d / f"{i:02d}.png")
    return d
