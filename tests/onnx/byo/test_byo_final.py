"""attach-nms for outputs that are already final (end-to-end heads): Ultralytics end2end rows, their
variants (class before score, mmdeploy dets + labels), DETR-style pred_boxes + logits (softmax with
a no-object column, sigmoid). Each generated the way its tool writes it, converted with one command,
run through edgedet.load and compared with the tool's own post-processing on the same image."""

import io

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from third_party import EndToEndYolo  # noqa: E402

import edgedet  # noqa: E402
from edgedet import contract  # noqa: E402
from edgedet.cli.main import cli  # noqa: E402
from edgedet.errors import InputError  # noqa: E402
from edgedet.preprocess import letterbox, to_input, unletterbox_boxes  # noqa: E402

S, NC, MAX_DET = 64, 4, 30
NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "dog"}


class DetrStyle(torch.nn.Module):
    """A DETR-style set-prediction head: pred_boxes (cx, cy, w, h in 0..1) and logits over C classes
    (+ a no-object column for softmax), input normalised with the ImageNet mean/std inside the
    module (as the HuggingFace processors do before the model)."""

    def __init__(self, queries=24, activation="softmax"):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 16, 16)
        self.boxes = torch.nn.Linear(16 * 16, queries * 4)
        extra = 1 if activation == "softmax" else 0
        self.logits = torch.nn.Linear(16 * 16, queries * (NC + extra))
        self.q, self.extra = queries, extra

    def forward(self, pixel_values):
        h = torch.relu(self.conv(pixel_values)).flatten(1)
        return self.logits(h).view(-1, self.q, NC + self.extra) * 8, torch.sigmoid(
            self.boxes(h).view(-1, self.q, 4)
        )


def to_onnx(module, path, input_name, output_names, ultralytics_metadata=False):
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (torch.rand(1, 3, S, S),),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=[input_name],
        output_names=output_names,
    )
    model = onnx.load_from_string(buf.getvalue())
    if ultralytics_metadata:  # what Ultralytics' ONNX export writes beside the graph
        onnx.helper.set_model_props(model, {"names": str(NAMES), "task": "detect", "stride": "32"})
    onnx.save(model, str(path))
    return path


def cli_ok(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def image():
    rng = np.random.default_rng(5)
    # letterboxed with padding into 64 x 64
    return rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)


def letterboxed(img):
    canvas, info = letterbox(img, S, S)
    return torch.from_numpy(to_input([canvas])), info


def box_iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def assert_matches(det, boxes, scores, labels):
    """Same detections as the reference set: count, then each matched by class and IoU >= 0.99."""
    assert len(det) == len(boxes) > 0, (len(det), len(boxes))
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose(det.scores, scores[order], rtol=1e-5, atol=1e-6)
    ious = box_iou(det.boxes, boxes[order])
    assert (np.diag(ious) >= 0.99).all() and (det.class_ids == labels[order]).all()


def test_ultralytics_end2end_output0_one_command(tmp_path):
    module = EndToEndYolo()
    src = to_onnx(
        module, tmp_path / "yolo26n.onnx", "images", ["output0"], ultralytics_metadata=True
    )
    out = tmp_path / "e2e.onnx"
    cli_ok("attach-nms", src, "--final", "output0", "-o", out)
    with edgedet.load(out, providers=["cpu"]) as det:
        assert det.manifest.nms_implementation == contract.END_TO_END
        assert det.manifest.class_names == list(NAMES.values())
        img = image()
        got = det(img)
    x, info = letterboxed(img)
    with torch.no_grad():
        rows = module(x)[0].numpy()
    keep = rows[:, 4] > 0.25  # Ultralytics' predictor keeps rows above conf (0.25 default)
    assert 0 < keep.sum() < MAX_DET
    assert_matches(
        got, unletterbox_boxes(rows[keep, :4], info), rows[keep, 4], rows[keep, 5].astype(int)
    )


@pytest.mark.parametrize("layout", ["class-first", "mmdeploy"])
def test_row_variants_graph_and_host(layout, tmp_path):
    module = EndToEndYolo(layout)
    outs = ["dets", "labels"] if layout == "mmdeploy" else ["output0"]
    src = to_onnx(module, tmp_path / f"{layout}.onnx", "input", outs)
    args = ["--final", outs[0], "--num-classes", NC, "--max-det", 20]
    args += (
        ["--final-columns", "xyxy,score", "--final-labels", "labels"]
        if layout == "mmdeploy"
        else ["--final-columns", "xyxy,class,score"]
    )
    cli_ok("attach-nms", src, *args, "-o", tmp_path / "graph.onnx")
    cli_ok("attach-nms", src, *args, "--nms", "none", "-o", tmp_path / "host.onnx")
    img = image()
    with (
        edgedet.load(tmp_path / "graph.onnx", providers=["cpu"]) as g,
        edgedet.load(tmp_path / "host.onnx", providers=["cpu"]) as h,
    ):
        assert (
            g.kind == contract.KIND_NMS
            and h.kind == contract.KIND_RAW
            and h.manifest.nms_where == "host"
        )
        a, b = g(img), h(img)
    x, info = letterboxed(img)
    with torch.no_grad():
        ref = module(x)
    if layout == "mmdeploy":
        boxes, scores, labels = ref[0][0, :, :4].numpy(), ref[0][0, :, 4].numpy(), ref[1][0].numpy()
    else:
        boxes, labels, scores = (
            ref[0, :, :4].numpy(),
            ref[0, :, 4].numpy().astype(int),
            ref[0, :, 5].numpy(),
        )
    keep = np.flatnonzero(scores > 0.25)[:20]  # rows come sorted by score: the first 20 above 0.25
    assert_matches(a, unletterbox_boxes(boxes[keep], info), scores[keep], labels[keep])
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


def detr_reference(logits, boxes, activation, threshold, k):
    """The DETR / RT-DETR post-processing as HuggingFace's processors write it, in input pixels."""
    xyxy = (
        torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)
        * S
    )
    if activation == "softmax":  # DetrImageProcessor.post_process_object_detection
        scores, labels = torch.softmax(logits, -1)[..., :-1].max(-1)
        keep = scores[0] > threshold
        return xyxy[0][keep].numpy(), scores[0][keep].numpy(), labels[0][keep].numpy()
    # RTDetrImageProcessor: top-k pairs
    scores, index = torch.topk(torch.sigmoid(logits).flatten(1), k, dim=-1)
    labels, query = index % NC, index // NC
    keep = scores[0] > threshold
    return xyxy[0][query[0][keep]].numpy(), scores[0][keep].numpy(), labels[0][keep].numpy()


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_detr_style_pair_one_command(activation, tmp_path):
    torch.manual_seed(1)
    module = DetrStyle(activation=activation)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    src = to_onnx(module, tmp_path / "detr.onnx", "pixel_values", ["logits", "pred_boxes"])
    out = tmp_path / "detr.e2e.onnx"
    threshold = 0.5 if activation == "softmax" else 0.7
    cli_ok(
        "attach-nms",
        src,
        "--detr-boxes",
        "pred_boxes",
        "--detr-logits",
        "logits",
        "--detr-activation",
        activation,
        "--mean",
        ",".join(map(str, mean)),
        "--std",
        ",".join(map(str, std)),
        "--num-classes",
        NC,
        "--score-threshold",
        threshold,
        "--max-det",
        40,
        "-o",
        out,
    )
    img = image()
    with edgedet.load(out, providers=["cpu"]) as det:
        got = det(img)
    x, info = letterboxed(img)
    with torch.no_grad():
        logits, boxes = module(
            (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        )
    rb, rs, rl = detr_reference(logits, boxes, activation, threshold, 40)
    # the threshold cuts some
    assert len(rs) < logits.shape[1] * (1 if activation == "softmax" else NC)
    assert_matches(got, unletterbox_boxes(rb, info), rs, rl)


def test_runtime_threshold_and_no_iou(tmp_path):
    src = to_onnx(
        EndToEndYolo(), tmp_path / "y.onnx", "images", ["output0"], ultralytics_metadata=True
    )
    out = tmp_path / "rt.onnx"
    cli_ok(
        "attach-nms",
        src,
        "--final",
        "output0",
        "--runtime-thresholds",
        "--score-threshold",
        "0.1",
        "-o",
        out,
    )
    with edgedet.load(out, providers=["cpu"]) as det:
        assert contract.SCORE_THRESHOLD_INPUT in det.threshold_inputs
        low = det(image())
        det.set_thresholds(score=0.6)
        high = det(image())
        with pytest.raises(InputError, match="no NMS"):
            det.set_thresholds(iou=0.5)
    assert len(high) < len(low) and (high.scores > 0.6).all()
    np.testing.assert_array_equal(low.scores[: len(high)], high.scores)


def test_refusals(tmp_path):
    src = to_onnx(EndToEndYolo(), tmp_path / "y.onnx", "input", ["output0"])
    r = CliRunner().invoke(
        cli, ["attach-nms", str(src), "--final", "output0", "-o", str(tmp_path / "o.onnx")]
    )
    assert r.exit_code != 0 and "--num-classes" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(
        cli,
        [
            "attach-nms",
            str(src),
            "--final",
            "output0",
            "--num-classes",
            "4",
            "--final-columns",
            "xyxy,score,klass",
            "-o",
            str(tmp_path / "o.onnx"),
        ],
    )
    assert r.exit_code != 0 and "klass" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "attach-nms",
            str(src),
            "--final",
            "output0",
            "--num-classes",
            "4",
            "--final-columns",
            "xyxy,score,class,cxcywh,score",
            "-o",
            str(tmp_path / "o.onnx"),
        ],
    )
    assert r.exit_code != 0 and "each once" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "attach-nms",
            str(src),
            "--detr-boxes",
            "output0",
            "--num-classes",
            "4",
            "-o",
            str(tmp_path / "o.onnx"),
        ],
    )
    assert r.exit_code != 0 and "--detr-logits" in r.output


def test_recognise_final_outputs(tmp_path):
    """What an inspect mode can tell the user: which attach-nms flags fit a file."""
    from edgedet.onnx.byo.final import recognise_final

    rows = onnx.load(str(to_onnx(EndToEndYolo(), tmp_path / "y.onnx", "images", ["output0"], True)))
    assert recognise_final(rows)[1] == ["--final", "output0"]
    onnx.helper.set_model_props(rows, {"names": str(NAMES), "head": "RTDETRDecoder"})
    assert recognise_final(rows)[1][-1] == "--normalized"
    detr = onnx.load(
        str(to_onnx(DetrStyle(), tmp_path / "d.onnx", "pixel_values", ["logits", "pred_boxes"]))
    )
    spec, flags = recognise_final(detr)
    assert spec.detr_activation == "softmax" and flags[:2] == ["--detr-boxes", "pred_boxes"]
    dense = onnx.load(
        str(to_onnx(EndToEndYolo("mmdeploy"), tmp_path / "m.onnx", "input", ["dets", "labels"]))
    )
    assert recognise_final(dense) is None  # two outputs, no [B, K, 6]: not guessed
