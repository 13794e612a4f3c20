"""Every exportable family quantises: FP16 and INT8 (TensorRT Q/DQ layout) run in ONNX Runtime and
the INT8 graph passes the static TensorRT Q/DQ check. Small inputs, randomly initialised weights,
four calibration images.
"""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgedet.onnx.quantize.api import QuantizeOptions, quantize  # noqa: E402
from edgedet.onnx.quantize.check import check_qdq  # noqa: E402
from exporters.pipeline import ExportOptions, export  # noqa: E402

# two-stage: FP32 from the RPN's EdgeDetNMS on
FAMILIES = [
    ("ssdlite320_mobilenet_v3_large", 160),
    ("ssd300_vgg16", 300),
    ("retinanet_resnet50_fpn", 128),
    ("fcos_resnet50_fpn", 128),
    ("resnet18", 64),
    ("mobilenet_v3_large", 64),
    ("nano", 320),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", 320),
]


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return d


@pytest.mark.parametrize("name,size", FAMILIES)
def test_family_quantises_for_tensorrt(tmp_path, calib, name, size):
    import onnx

    torch.manual_seed(0)
    fp32 = tmp_path / "m.onnx"
    export(ExportOptions(model=name, imgsz=size, verify=False, simplify=False), fp32)
    x = np.random.default_rng(1).random((1, 3, size, size), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "calibrating with 4 images" is expected here
        for mode in ("fp16", "int8"):
            out = tmp_path / f"m.{mode}.onnx"
            res = quantize(
                fp32,
                out,
                QuantizeOptions(mode=mode, calib_dir=str(calib), cache_dir=str(tmp_path / "c")),
            )
            assert res.precision["kept_fp32"], "the head must stay in higher precision"
            sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            outputs = sess.run(None, {"images": x})
            assert all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
    m = onnx.load(tmp_path / "m.int8.onnx")
    assert sum(n.op_type == "QuantizeLinear" for n in m.graph.node) > 5
    assert check_qdq(m) == []
