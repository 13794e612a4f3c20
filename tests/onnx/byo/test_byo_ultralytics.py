"""A real Ultralytics export through the README's attach-nms line, unmodified (issue 14).

``YOLO('yolov8n.yaml').export(format='onnx')`` builds YOLOv8n with random weights from its bundled
config (no download, offline) and exports it as Ultralytics ships it. Skipped where ultralytics is
not installed (it is in the ``dev`` extra).
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from byo_reference import letterbox_ref, match, nms  # noqa: E402

import edgedet  # noqa: E402
from edgedet.cli.main import cli  # noqa: E402
from edgedet.manifest import read_manifest  # noqa: E402
from edgedet.nms.params import NMSParams  # noqa: E402
from edgedet.onnx.byo.attach import ByoSpec, attach_file  # noqa: E402

README = Path(__file__).resolve().parents[3] / "README.md"
SIZE = 160  # small export: the test is about the file's form, not accuracy


# Runs in a child process: importing ultralytics patches Pillow/OpenCV for the whole process (and
# tries to pip-install plugins unless YOLO_OFFLINE is set), which must not leak into other tests.
EXPORT = """
import sys, numpy as np, torch
from ultralytics import YOLO
torch.manual_seed(0)  # the random weights, drawn when the model is built
model = YOLO("yolov8n.yaml")
net = model.model
# Freshly initialised, YOLOv8n's activations shrink layer by layer to ~0 and every output is its
# bias (5 distinct scores): nothing to compare. BatchNorm statistics of the test's own images
# restore input-dependent outputs; the exported file's form is unchanged.
for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.reset_running_stats()
        m.momentum = None  # running stats = the plain average over the batches seen
net.train()
with torch.no_grad():
    net(torch.from_numpy(np.load("calib.npy")))
net.eval()
print(model.export(format="onnx", imgsz=int(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def yolov8n(tmp_path_factory):
    """A fresh Ultralytics YOLOv8n ONNX export (random weights), as ``their_yolo.onnx``."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics is not installed (pip install 'edgedet[dev]')")
    where = tmp_path_factory.mktemp("ultralytics")
    canvases = [letterbox_ref(img, SIZE, top_left=False, rounding=round)[0] for img in _images()]
    np.save(
        where / "calib.npy", (np.stack(canvases).astype(np.float32) / 255).transpose(0, 3, 1, 2)
    )
    env = {
        **os.environ,
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(where / "config"),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", EXPORT, str(SIZE)],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    exported = where / done.stdout.strip().splitlines()[-1]  # a path relative to the export folder
    return exported.rename(where / "their_yolo.onnx")


def readme_line() -> str:
    lines = [
        line.split("#")[0].strip()
        for line in README.read_text().splitlines()
        if line.startswith("edgedet attach-nms their_yolo.onnx --combined")
    ]
    assert len(lines) == 1
    return lines[0]


def test_readme_attach_nms_line_runs_unmodified(yolov8n, monkeypatch):
    monkeypatch.chdir(yolov8n.parent)
    args = shlex.split(readme_line())[1:]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = yolov8n.parent / args[args.index("-o") + 1]
    m = read_manifest(out)
    assert m.input.shape == (1, 3, SIZE, SIZE) and m.num_classes == 80 and m.nms_where == "graph"
    assert m.notes["renamed_tensors"] == {"images": "byo_src_images"}
    onnx.checker.check_model(onnx.load(out), full_check=True)
    dets = edgedet.load(out, providers=["cpu"])(np.zeros((SIZE, SIZE, 3), np.uint8))
    assert dets.class_names == tuple(m.class_names)


def _images():
    rng = np.random.default_rng(0)
    out = []
    for h, w in ((320, 160), (120, 320)):  # letterbox scale 0.5 exactly into 160x160
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = np.linspace(0, 255, h, dtype=np.uint8)[:, None, None]
        for _ in range(5):
            y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
            img[y : y + 20 + rng.integers(0, h // 3), x : x + 20 + rng.integers(0, w // 3)] = (
                rng.integers(0, 256, 3)
            )
        out.append(img)
    return out


def _ultralytics_postprocess(sess, img, params):
    """Ultralytics' own pipeline: centred letterbox (pad 114), RGB 0..1, output0 [1, 84, N]
    cxcywh."""
    canvas, r, left, top = letterbox_ref(img, SIZE, top_left=False, rounding=round)
    (out,) = sess.run(None, {"images": (canvas.astype(np.float32) / 255).transpose(2, 0, 1)[None]})
    a = out[0].T
    boxes = np.concatenate([a[:, :2] - a[:, 2:4] / 2, a[:, :2] + a[:, 2:4] / 2], 1)
    h, w = img.shape[:2]
    return [
        (np.clip((b - [left, top, left, top]) / r, 0, [w, h, w, h]), s, c)
        for b, s, c in nms(boxes, a[:, 4:], params)
    ]


def test_real_export_matches_its_own_postprocessing_end_to_end(yolov8n, tmp_path):
    """Random weights score ~1e-4: the threshold sits at the top of the score distribution so
    there are detections to compare, in the widest gap between scores there (a score a float32
    ulp from the threshold would make the comparison a coin toss, not a test)."""
    sess = ort.InferenceSession(str(yolov8n), providers=["CPUExecutionProvider"])
    scores = []
    for img in _images():
        canvas = letterbox_ref(img, SIZE, top_left=False, rounding=round)[0]
        (out,) = sess.run(
            None, {"images": (canvas.astype(np.float32) / 255).transpose(2, 0, 1)[None]}
        )
        scores.append(out[0, 4:].ravel())
    ranked = np.unique(np.concatenate(scores))[::-1]  # descending
    k = next(k for k in range(60, len(ranked) - 1) if ranked[k] - ranked[k + 1] > 1e-3 * ranked[k])
    # ~60 candidates above it, none within 0.05 %
    threshold = float((ranked[k] + ranked[k + 1]) / 2)
    params = NMSParams(
        score_threshold=threshold, iou_threshold=0.45, max_output_boxes=100, top_k=1000
    )
    attach_file(
        yolov8n, tmp_path / "ours.onnx", ByoSpec(combined="output0", box_format="cxcywh"), params
    )
    det = edgedet.load(tmp_path / "ours.onnx", providers=["cpu"])
    total = 0
    for img in _images():
        dets, ref = det(img), _ultralytics_postprocess(sess, img, params)
        assert len(dets) == len(ref) < params.max_output_boxes
        assert match(dets, ref) >= 0.99
        total += len(ref)
    assert total >= 5, total
    # pytest -s: the figure
    print(f"ultralytics yolov8n: {total} detections, threshold {threshold:.4g}")


def test_inspect_reads_the_real_export(yolov8n):
    r = CliRunner().invoke(cli, ["attach-nms", str(yolov8n), "--inspect"], catch_exceptions=False)
    assert r.exit_code == 0
    assert re.search(r"output0 \[1, 84, \d+\] float32: combined YOLO head \[B, 4\+C, N\]", r.output)
    assert "--combined output0 --box-format cxcywh -o" in r.output
