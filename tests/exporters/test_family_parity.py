"""Every single-stage family: ONNX Runtime (NMS in graph) == the PyTorch wrapper + host NMS, and how
close both are to torchvision's own forward().

torchvision weights cannot be downloaded here, so heads are randomly initialised; their class
logits are scaled up so scores spread out instead of all sitting at 1/91 (ties would make any
comparison meaningless).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edgedet  # noqa: E402
from edgedet.eval.compare import ParityAccumulator  # noqa: E402
from exporters.pipeline import ExportOptions, build_exportable, export  # noqa: E402
from exporters.torch_backend import torch_detector  # noqa: E402

FAMILIES = [
    ("ssdlite320_mobilenet_v3_large", 160),
    ("ssd300_vgg16", 300),
    ("retinanet_resnet50_fpn", 128),
    ("retinanet_resnet50_fpn_v2", 128),
    ("fcos_resnet50_fpn", 128),
]


def spread_scores(em, size, imgs):
    """Wake the random model up and scale its class head until scores spread without saturating."""
    from torch_fixtures import spread_class_scores, wake_up

    wake_up(em.module, size)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    head = em.module.model.head.classification_head
    for _ in range(6):
        with torch.no_grad():
            scores = em.module(x)[1].numpy()
        if em.nms.background_class >= 0:
            scores = np.delete(scores, em.nms.background_class, axis=-1)
        if np.quantile(scores, 0.999) < 0.99:
            break
        spread_class_scores(head, 0.5)
    # a threshold keeping the top 0.2 %: detections, few ties
    return float(np.quantile(scores, 0.998))


def images(size, n=3):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = np.full((size, size, 3), 90 + 40 * i, np.uint8)
        for _ in range(4):
            x, y = rng.integers(0, size - 40, 2)
            img[y : y + 40, x : x + 40] = rng.integers(0, 256, 3)
        out.append(img)
    return out


def assert_raw_parity(em, path, size):
    """Raw outputs of the exported graph vs the torch wrapper.

    scores: |a - b| <= 1e-3 + 1e-4 |b|. boxes (pixels):
    |a - b| <= max(1e-3, 1e-4 * imgsz) + 1e-3 |b|:
    decoding multiplies head outputs by anchors of up to 512 px and exp(dw), so ~1e-6 relative float
    noise in a ResNet-50 reaches 0.03 px on a 72 px coordinate of RetinaNet's largest anchors
    (exporters.pipeline.raw_tolerance applies the same rule when exporting).
    """
    from edgedet.onnx.raw_tap import onnx_raw_session

    sess, names = onnx_raw_session(path)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(7))
    if sess.get_inputs()[0].shape[0] == 1:
        x = x[:1]
    got = dict(zip(names, sess.run(names, {"images": x.numpy()})))
    with torch.no_grad():
        ref = dict(zip(("boxes", "scores"), (t.numpy() for t in em.module(x))))
    np.testing.assert_allclose(got["scores"], ref["scores"], atol=1e-3, rtol=1e-4, err_msg="scores")
    np.testing.assert_allclose(
        got["boxes"], ref["boxes"], atol=max(1e-3, 1e-4 * size), rtol=1e-3, err_msg="boxes"
    )


def sized(d, min_side=4.0):
    """Detections with both sides >= min_side px: random heads emit sub-pixel boxes, for which
    IoU >= 0.99 would test float noise (0.003 px on a 1 px box) rather than the export."""
    wh = d.boxes[:, 2:] - d.boxes[:, :2]
    return (
        d.filter(-1.0)
        if len(d) == 0
        else type(d)(
            *(x[(wh >= min_side).all(1)] for x in (d.boxes, d.scores, d.class_ids)),
            d.class_names,
            d.image_size,
        )
    )


def assert_graph_nms_is_host_nms(path, params, imgs):
    """Given the same raw tensors, the in-graph NMS and the host NMS produce identical outputs."""
    import onnx
    import onnxruntime as ort

    from edgedet.nms.host import batched_nms

    model = onnx.load(path)
    model.graph.output.extend(
        [onnx.helper.make_empty_tensor_value_info(n) for n in ("boxes", "scores")]
    )
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = ["num_dets", "det_boxes", "det_scores", "det_classes", "boxes", "scores"]
    for img in imgs:
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / 255
        num, boxes, scores, classes, raw_b, raw_s = sess.run(names, {"images": x})
        host = batched_nms(raw_b, raw_s, params)
        for got, want in zip((num, boxes, scores, classes), host[:4]):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name,size", FAMILIES)
def test_onnx_detections_equal_wrapper_and_track_torchvision(tmp_path, name, size):
    torch.manual_seed(0)  # random init: the same model on every run
    em = build_exportable(ExportOptions(model=name, imgsz=size))
    imgs = images(size)
    threshold = spread_scores(em, size, imgs)
    em.nms = em.nms.replace(score_threshold=threshold)
    opts = ExportOptions(
        model=name, imgsz=size, nms="graph", nms_overrides={"score_threshold": threshold}
    )
    res = export(opts, tmp_path / "m.onnx", model=em)
    assert res.manifest.output_kind == "nms"
    assert_raw_parity(em, tmp_path / "m.onnx", size)
    with edgedet.load(res.path) as onnx_det, torch_detector(em) as torch_det:
        pairs = [(sized(torch_det(img)), sized(onnx_det(img))) for img in imgs]
    acc = ParityAccumulator(iou_threshold=0.99)
    for a, b in pairs:
        acc.add(a, b)
    report = acc.result()
    assert report["detections_a"] > 0, "the test needs detections to compare"
    # Float noise (~1e-6) in raw scores can reorder near-tied candidates, and NMS then keeps the
    # other box of the pair; that is the only source of difference (assert_graph_nms_is_host_nms),
    # so demand near-equality rather than equality.
    assert (
        min(report["matched_a"], report["matched_b"]) >= 0.95 and report["class_agreement"] == 1.0
    ), report
    assert report["score_delta"]["max"] < 1e-4
    assert_graph_nms_is_host_nms(res.path, em.nms, imgs)

    # torchvision's own forward on the same (square, so un-letterboxed) input. The post-processing
    # differs only in candidate caps (global top-k here, per level / per class there): lift both
    # caps and the detections must coincide. (With the default caps the difference is measured by
    # benchmarks/families.py and reported in docs/models.md.)
    tv = em.module.model
    tv.score_thresh, tv.topk_candidates = threshold, 100_000
    res = export(
        ExportOptions(
            model=name,
            imgsz=size,
            nms="graph",
            nms_overrides={"score_threshold": threshold, "top_k": 20_000},
        ),
        tmp_path / "uncapped.onnx",
        model=em,
    )
    acc = ParityAccumulator(iou_threshold=0.99)
    with edgedet.load(res.path) as onnx_det:
        for img in imgs:
            ref = em.reference(torch.from_numpy(img).permute(2, 0, 1).float() / 255)
            ours = onnx_det(img)
            acc.add(
                sized(
                    type(ours)(
                        ref["boxes"].numpy(),
                        ref["scores"].numpy(),
                        ref["labels"].numpy().astype(np.int32),
                    )
                ),
                sized(ours),
            )
    agree = acc.result()
    assert agree["detections_a"] > 0 and min(agree["matched_a"], agree["matched_b"]) >= 0.95, agree
    assert agree["class_agreement"] == 1.0 and agree["score_delta"]["max"] < 1e-4
