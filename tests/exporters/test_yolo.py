"""YOLO-style heads: in-graph decode against a numpy reference, head-spec errors, Ultralytics."""

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgedet.errors import InputError  # noqa: E402
from exporters.pipeline import ExportOptions, export  # noqa: E402
from exporters.yolo import YoloHeadSpec, exportable_from_module  # noqa: E402


class Levels(nn.Module):
    """Returns one random-but-fixed map per stride with the given channel count."""

    def __init__(self, channels, imgsz, strides=(8, 16, 32)):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3, c, s, s) for c, s in zip(channels, strides))

    def forward(self, x):
        return [conv(x) for conv in self.convs]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_dfl_decode_matches_numpy_reference():
    torch.manual_seed(0)
    spec = YoloHeadSpec("dfl", num_classes=3, reg_max=4)
    mod = Levels([4 * 4 + 3] * 3, 64)
    em = exportable_from_module(mod, spec, imgsz=64)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        boxes, scores = (t.numpy() for t in em.module(x))
        raw = [t.numpy() for t in mod(x)]
    assert boxes.shape == (1, 64 + 16 + 4, 4) and scores.shape == (1, 84, 3)
    # reference: level 1 (stride 16), cell row 2 col 3
    r = raw[1][0, :, 2, 3]
    p = np.exp(r[:16].reshape(4, 4))
    p /= p.sum(1, keepdims=True)
    dist = p @ np.arange(4)
    cx, cy = 3.5, 2.5
    want = np.array([cx - dist[0], cy - dist[1], cx + dist[2], cy + dist[3]]) * 16
    i = 64 + 2 * 4 + 3
    np.testing.assert_allclose(boxes[0, i], want, rtol=1e-5)
    np.testing.assert_allclose(scores[0, i], sigmoid(r[16:]), rtol=1e-5)


def test_anchor_decode_matches_numpy_reference():
    torch.manual_seed(1)
    anchors = (((10, 13), (16, 30)), ((30, 61), (62, 45)), ((116, 90), (156, 198)))
    spec = YoloHeadSpec("anchor", num_classes=2, anchors=anchors)
    mod = Levels([2 * 7] * 3, 64)
    em = exportable_from_module(mod, spec, imgsz=64)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        boxes, scores = (t.numpy() for t in em.module(x))
        raw = [t.numpy() for t in mod(x)]
    # level 0 (stride 8, 8x8 grid), anchor 1, cell row 5 col 6
    p = sigmoid(raw[0][0].reshape(2, 7, 8, 8)[1, :, 5, 6])
    cx, cy = (p[0] * 2 - 0.5 + 6) * 8, (p[1] * 2 - 0.5 + 5) * 8
    w, h = (p[2] * 2) ** 2 * 16, (p[3] * 2) ** 2 * 30
    i = 1 * 64 + 5 * 8 + 6
    np.testing.assert_allclose(
        boxes[0, i], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5
    )
    np.testing.assert_allclose(scores[0, i], p[4] * p[5:], rtol=1e-5)


def test_head_spec_mismatches_are_named():
    mod = Levels([19] * 3, 64)
    with pytest.raises(
        InputError,
        match=(
            r"level 0 \(stride 8\) output has shape \(1, 19, 8, 8\), the spec implies \(1, 20,"
            r" 8, 8\)"
        ),
    ):
        exportable_from_module(mod, YoloHeadSpec("dfl", num_classes=4, reg_max=4), imgsz=64)
    with pytest.raises(InputError, match="returns 3 maps, the spec has 2 strides"):
        exportable_from_module(
            mod, YoloHeadSpec("dfl", num_classes=3, reg_max=4, strides=(8, 16)), imgsz=64
        )
    with pytest.raises(InputError, match="needs anchors"):
        exportable_from_module(mod, YoloHeadSpec("anchor", num_classes=3), imgsz=64)
    with pytest.raises(InputError, match="not one of"):
        exportable_from_module(mod, YoloHeadSpec("yolox", num_classes=3), imgsz=64)


def test_module_export_runs_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(2)
    spec = YoloHeadSpec("dfl", num_classes=3, reg_max=4)
    em = exportable_from_module(Levels([19] * 3, 64), spec, imgsz=64, class_names=["a", "b", "c"])
    res = export(ExportOptions(model="nano", nms="none"), tmp_path / "y.onnx", model=em)
    assert res.manifest.family == "yolo" and res.manifest.class_names == ["a", "b", "c"]
    x = torch.rand(1, 3, 64, 64)
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref = [t.numpy() for t in em.module(x)]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is None,
    reason=(
        "optional ultralytics package (AGPL-3.0) not installed; run with it on PYTHONPATH to test"
    ),
)
def test_ultralytics_checkpoint_exports_and_matches(tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    ckpt = tmp_path / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(str(ckpt))  # random init, no download
    res = export(
        ExportOptions(model="ultralytics", weights=str(ckpt), imgsz=128, nms="none"),
        tmp_path / "u.onnx",
    )
    assert len(res.manifest.class_names) == 80  # a .yaml-built model names its classes "0".."79"
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(
        ["boxes", "scores"], {"images": np.random.rand(1, 3, 128, 128).astype(np.float32)}
    )
    assert boxes.shape == (1, 336, 4) and scores.shape == (1, 336, 80)
    assert max(v["max_abs"] for v in res.verification.values()) < 1e-3


def test_ultralytics_missing_weights_is_clear(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        export(
            ExportOptions(model="ultralytics", weights=str(tmp_path / "nope.pt")),
            tmp_path / "u.onnx",
        )
