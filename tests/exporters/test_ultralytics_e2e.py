"""Ultralytics end-to-end exports (YOLO26, YOLOv10, RT-DETR; random weights from the bundled yaml,
no download) through `attach-nms --final output0`, matched against Ultralytics' own predictor on the
same image at IoU >= 0.99. Ultralytics is AGPL-3.0 and optional: skipped where it is not
installed."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
ultralytics = pytest.importorskip(
    "ultralytics",
    reason=(
        "ultralytics (optional, AGPL-3.0) is not installed; "
        "pip install ultralytics to run the end-to-end export checks"
    ),
)

import edgedet  # noqa: E402
from edgedet import contract  # noqa: E402

SIZE = 320


def picture():
    """A synthetic RGB picture exactly the input size, so no tool letterboxes (their padding rules
    differ)."""
    rng = np.random.default_rng(7)
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[:] = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :, None]
    for _ in range(12):
        y, x = rng.integers(0, SIZE - 60, 2)
        img[y : y + 60, x : x + 80] = rng.integers(0, 256, 3)
    return img


def liven(model, img):
    """Random weights from the yaml give every anchor the same score (activations vanish through the
    untrained BatchNorms; RT-DETR zero-initialises its box heads): re-estimate BatchNorm statistics
    on the picture and give zero-initialised head weights small random values, so rows differ."""
    import torch

    net = model.model
    x = torch.from_numpy((img.transpose(2, 0, 1)[None] / 255.0).astype(np.float32))
    with torch.no_grad():
        for p in net.model[-1].parameters():
            if p.dim() > 1 and p.std() < 1e-6:
                torch.nn.init.normal_(p, std=0.01)
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the one batch below
        net.train()
        net(torch.cat([x, x.flip(-1), x.flip(-2)]))
        net.eval()


def threshold_with_detections(onnx_path, img, count=20):
    """A score threshold halfway between the count-th and the next score of the export's own rows:
    random weights score low, and a threshold at a gap decides no row on float noise."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = (img.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
    rows = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
    assert rows.shape[-1] == 6, f"expected end-to-end rows [1, K, 6], got {rows.shape}"
    s = np.sort(rows[:, 4])[::-1]
    return float((s[count - 1] + s[count]) / 2)


def iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg,kind", [("yolo26n.yaml", "YOLO"), ("yolov10n.yaml", "YOLO"), ("rtdetr-l.yaml", "RTDETR")]
)
def test_ultralytics_end_to_end_export_matches_its_predictor(cfg, kind, tmp_path, monkeypatch):
    import torch
    from click.testing import CliRunner

    from edgedet.cli.main import cli

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = getattr(ultralytics, kind)(cfg)
    img = picture()
    liven(model, img)
    src = model.export(format="onnx", imgsz=SIZE, **({"end2end": True} if kind == "YOLO" else {}))
    thr = threshold_with_detections(src, img)
    out = tmp_path / "e2e.onnx"
    # RT-DETR's rows hold (cx, cy, w, h) in 0..1 of the input; YOLO's (x1, y1, x2, y2) in pixels
    normalized = (
        ["--normalized", "--final-columns", "cxcywh,score,class"] if kind == "RTDETR" else []
    )
    r = CliRunner().invoke(
        cli,
        [
            "attach-nms",
            str(src),
            "--final",
            "output0",
            *normalized,
            "--score-threshold",
            str(thr),
            "--max-det",
            "300",
            "-o",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    with edgedet.load(out, providers=["cpu"]) as det:
        assert det.manifest.nms_implementation == contract.END_TO_END
        got = det(img)
    # Ultralytics' own inference of the same ONNX file (its AutoBackend + predictor post-processing)
    onnx_model = getattr(ultralytics, kind)(
        str(src), **({"task": "detect"} if kind == "YOLO" else {})
    )
    # BGR
    res = onnx_model.predict(
        np.ascontiguousarray(img[..., ::-1]), imgsz=SIZE, conf=thr, verbose=False
    )[0]
    boxes, scores, cls = (
        res.boxes.xyxy.cpu().numpy(),
        res.boxes.conf.cpu().numpy(),
        res.boxes.cls.cpu().numpy().astype(int),
    )
    assert len(got) == len(boxes) == 20
    # edgedet clips boxes to the image; Ultralytics' RT-DETR predictor does not
    boxes = np.clip(boxes, 0, SIZE)
    # one to one: same class, score within 1e-4, IoU >= 0.99 (equal scores may come in another
    # order)
    ok = (iou(boxes, got.boxes) >= 0.99) & (cls[:, None] == got.class_ids[None])
    ok &= np.abs(scores[:, None] - got.scores[None]) <= 1e-4
    used = set()
    for i in np.argsort(-scores, kind="stable"):
        j = next((j for j in np.flatnonzero(ok[i]) if j not in used), None)
        assert j is not None, (
            f"Ultralytics' detection {i} ({cls[i]}, {scores[i]:.5f}, {boxes[i]}) has no match"
        )
        used.add(j)
