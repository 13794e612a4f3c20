import numpy as np
import pytest


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
        img[y:y + 20, x:x + 30] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(d / f"{i:02d}.png")
    return d
