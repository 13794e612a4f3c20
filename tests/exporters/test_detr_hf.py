"""DETR through HuggingFace transformers (end-to-end head, no NMS): exported by `edgedet export`,
run through edgedet.load in ONNX Runtime and matched against transformers' own
post_process_object_detection on the same image; the same model's raw HF export (pixel_values ->
logits, pred_boxes) through attach-nms; FP16 and INT8 (softmax / LayerNorm kept out of Q/DQ). A tiny
config, random weights calibrated so scores spread (no hub download)."""

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
transformers = pytest.importorskip(
    "transformers", reason="the DETR family needs the optional transformers package"
)

import edgedet  # noqa: E402
from edgedet import contract  # noqa: E402
from edgedet.preprocess import letterbox, to_input, unletterbox_boxes  # noqa: E402
from exporters.pipeline import ExportOptions, build_exportable, export  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def detr(tmp_path_factory):
    """(ExportableModel, path of its export). The random model is saved with save_pretrained and
    exported again from that directory, so the --weights path is the one exercised."""
    d = tmp_path_factory.mktemp("detr")
    em = build_exportable(ExportOptions(model="detr_hf", imgsz=SIZE))
    em.module.model.save_pretrained(d / "hf")
    opts = ExportOptions(model="detr_hf", imgsz=SIZE, weights=str(d / "hf" / "model.safetensors"))
    res = export(opts, d / "detr.onnx")
    return build_exportable(opts), res


def scene(seed=3, shape=(96, 160)):
    """A synthetic picture: a gradient with coloured blocks (tests never read the shared photos)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((*shape, 3), np.uint8)
    img[:] = np.linspace(0, 255, shape[1], dtype=np.uint8)[None, :, None]
    for _ in range(6):
        y, x = rng.integers(0, shape[0] - 20), rng.integers(0, shape[1] - 30)
        img[y : y + 20, x : x + 30] = rng.integers(0, 256, 3)
    return img


def reference(em, img, threshold=0.5):
    """transformers' post_process_object_detection on the letterboxed image, boxes in original
    pixels."""
    canvas, info = letterbox(img, SIZE, SIZE)
    ref = em.reference(torch.from_numpy(to_input([canvas]))[0])
    return (
        unletterbox_boxes(ref["boxes"].numpy(), info),
        ref["scores"].numpy(),
        ref["labels"].numpy(),
    )


def box_iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area(a)[:, None] + area(b)[None] - inter)


def assert_matches(det, boxes, scores, labels, score_tol=1e-4, iou=0.99, px=0.05):
    """The same detection set: equal counts, and each reference detection matched one to one by a
    detection of the same class, score within ``score_tol`` and IoU >= ``iou`` (boxes clipped to
    zero width at the image border, which have no IoU, match by coordinates within ``px``)."""
    assert len(det) == len(boxes) > 0, (len(det), len(boxes))
    ious = box_iou(boxes, det.boxes)
    close = np.abs(boxes[:, None] - det.boxes[None]).max(-1) <= px
    ok = (np.nan_to_num(ious) >= iou) | (np.isnan(ious) & close)
    ok &= (labels[:, None] == det.class_ids[None]) & (
        np.abs(scores[:, None] - det.scores[None]) <= score_tol
    )
    used = set()
    for i in np.argsort(-scores, kind="stable"):
        j = next((j for j in np.flatnonzero(ok[i]) if j not in used), None)
        assert j is not None, (
            f"reference detection {i} ({labels[i]}, {scores[i]:.4f}, {boxes[i]}) has no match"
        )
        used.add(j)


def test_export_matches_transformers_post_processing(detr):
    em, res = detr
    m = res.manifest
    assert m.nms_implementation == contract.END_TO_END and m.source["random_init"] is False
    assert (
        m.nms.max_output_boxes == em.notes["queries"]
        and res.verification["boxes"]["max_abs"] < 0.05
    )
    with edgedet.load(res.path, providers=["cpu"]) as det:
        for seed in (3, 4):
            img = scene(seed)
            boxes, scores, labels = reference(em, img)
            # the threshold cuts: a check with detections
            assert 0 < len(scores) < em.notes["queries"]
            assert_matches(det(img), boxes, scores, labels)


def test_hf_onnx_export_through_attach_nms(detr, tmp_path):
    """The model exported as HF/optimum do (input pixel_values, outputs logits + pred_boxes), made
    to follow the contract with one attach-nms command."""
    from click.testing import CliRunner

    from edgedet.cli.main import cli

    em, _ = detr
    model = em.module.model

    class HF(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            out = self.model(pixel_values=pixel_values)
            return out.logits, out.pred_boxes

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            HF().eval(),
            (torch.rand(1, 3, SIZE, SIZE),),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["pixel_values"],
            output_names=["logits", "pred_boxes"],
        )
    src = tmp_path / "detr-hf.onnx"
    src.write_bytes(buf.getvalue())
    out = tmp_path / "detr-hf.e2e.onnx"
    r = CliRunner().invoke(
        cli,
        [
            "attach-nms",
            str(src),
            "--detr-boxes",
            "pred_boxes",
            "--detr-logits",
            "logits",
            "--mean",
            "0.485,0.456,0.406",
            "--std",
            "0.229,0.224,0.225",
            "--num-classes",
            str(len(em.class_names)),
            "--score-threshold",
            "0.5",
            "--max-det",
            "100",
            "-o",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    img = scene(5)
    with edgedet.load(out, providers=["cpu"]) as det:
        assert_matches(det(img), *reference(em, img))


def test_fp16_and_int8_with_attention_kept_out(detr, tmp_path, calib_dir):
    import onnx

    from edgedet.onnx.quantize.api import QuantizeOptions, quantize
    from edgedet.onnx.quantize.check import check_qdq

    em, res = detr
    img = scene(3)
    boxes, scores, labels = reference(em, img)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "calibrating with 12 images" is expected here
        fp16 = quantize(res.path, tmp_path / "d.fp16.onnx", QuantizeOptions(mode="fp16"))
        int8 = quantize(
            res.path,
            tmp_path / "d.int8.onnx",
            QuantizeOptions(
                mode="int8",
                calib_dir=str(calib_dir),
                cache_dir=str(tmp_path / "c"),
                exclude=("Softmax", "LayerNormalization"),
            ),
        )
    with edgedet.load(fp16.path, providers=["cpu"]) as det:
        got = det(img)
    # FP16 rounds the attention of a random (wide-weight) model: most detections keep class and box
    ious = box_iou(boxes, got.boxes)
    same = np.nan_to_num(ious) * (labels[:, None] == got.class_ids[None])
    # boxes clipped thin at the border have no stable IoU
    solid = (boxes[:, 2:] - boxes[:, :2]).min(1) >= 4
    matched = (same.max(1)[solid] >= 0.9).mean() if len(got) else 0.0
    print(
        f"FP16 vs transformers FP32: {len(got)} vs {len(boxes)} detections, {matched:.0%} of"
        f" {solid.sum()} boxes >= 4 px matched at IoU 0.9"
    )
    assert abs(len(got) - len(boxes)) <= 0.1 * len(boxes) and matched >= 0.8
    m = onnx.load(int8.path)
    nodes = {n.name: n for n in m.graph.node}
    consumers = {i for n in m.graph.node if n.op_type == "DequantizeLinear" for i in n.output}
    for n in m.graph.node:  # no softmax / layer norm reads a dequantised tensor: they stay in float
        if n.op_type in ("Softmax", "LayerNormalization"):
            assert not set(n.input) & consumers, n.name
    assert sum(n.op_type == "QuantizeLinear" for n in nodes.values()) > 5 and check_qdq(m) == []
    with edgedet.load(int8.path, providers=["cpu"]) as det:
        # runs; its accuracy is measured in benchmarks, not asserted
        assert det(img).boxes.shape[1] == 4
