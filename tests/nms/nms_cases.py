"""Shared NMS test material: hypothesis strategies, exact-IoU boxes, bitwise comparison, a spec
checker.

Boxes come mostly from a small grid of integers so duplicates, touching boxes and exact IoUs such
as 1/2 and 3/5 are common; specials (huge, infinite, NaN, inverted, zero-area) are mixed in.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from edgedet.nms.boxes import NMSOutput, activate, decode, iou
from edgedet.nms.params import NMSParams

GRID = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
SPECIAL_COORDS = [1e30, -1e30, 3e38, -3e38, np.inf, -np.inf, np.nan, 1e-30, -0.0, 0.5, 1e7 + 1]
SCORES = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0, -1.0, 2.0, 0.6]
SPECIAL_SCORES = [np.nan, np.inf, -np.inf]
IOU_THRESHOLDS = [0.0, 1 / 3, 0.45, 0.5, 0.6, 0.7, 1.0]
SCALES = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (0.5, 2.0, 1.0, 4.0)]


def coords(special: bool):
    base = st.sampled_from(GRID) | st.floats(-20, 20, width=32)
    return base | st.sampled_from(SPECIAL_COORDS) if special else base


def score_values(special: bool):
    base = st.sampled_from(SCORES) | st.floats(-3, 3, width=32)
    return base | st.sampled_from(SPECIAL_SCORES) if special else base


@st.composite
def params(draw, c: int) -> NMSParams:
    return NMSParams(
        score_threshold=draw(
            st.sampled_from([0.0, 0.25, 0.5, -1.0, 0.6]) | st.floats(-1, 1, width=32)
        ),
        iou_threshold=draw(st.sampled_from(IOU_THRESHOLDS)),
        max_output_boxes=draw(st.integers(1, 8)),
        top_k=draw(st.sampled_from([0, 1, 3, 1000])),
        background_class=draw(st.integers(-1, c)),
        score_activation=draw(st.booleans()),
        class_agnostic=draw(st.booleans()),
        box_coding=draw(st.integers(0, 1)),
        box_scale=draw(st.sampled_from(SCALES)),
    )


@st.composite
def cases(
    draw,
    special: bool = True,
    max_b: int = 2,
    max_n: int = 9,
    max_c: int = 3,
    min_n: int = 0,
    anchors: bool | None = None,
    per_class: bool | None = None,
):
    """(boxes, scores, params, anchors | None) with boxes [B, N, 4] or [B, N, C, 4], scores [B, N,
    C]."""
    b, n, c = (
        draw(st.integers(1, max_b)),
        draw(st.integers(min_n, max_n)),
        draw(st.integers(1, max_c)),
    )
    per_class = draw(st.booleans()) if per_class is None else per_class
    shape = (b, n, c, 4) if per_class else (b, n, 4)
    boxes = np.array(
        draw(st.lists(coords(special), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
        np.float32,
    ).reshape(shape)
    scores = np.array(
        draw(st.lists(score_values(special), min_size=b * n * c, max_size=b * n * c)), np.float32
    ).reshape(b, n, c)
    p = draw(params(c))
    use_anchors = draw(st.booleans()) if anchors is None else anchors
    anc = None
    if use_anchors:
        ab = draw(st.sampled_from([1, b]))
        anc = np.array(
            draw(st.lists(st.sampled_from(GRID), min_size=ab * n * 4, max_size=ab * n * 4)),
            np.float32,
        ).reshape(ab, n, 4)
        # deltas
        boxes = np.where(np.isfinite(boxes), np.clip(boxes, -8, 8), boxes).astype(np.float32)
    return boxes, scores, p, anc


def exact_arithmetic(case) -> bool:
    """No exp on the way (no sigmoid, no centre-size anchor decode): implementations agree bit for
    bit."""
    _, _, p, anchors = case
    return not p.score_activation and not (anchors is not None and p.box_coding == 1)


# -- exact IoU constructions ---------------------------------------------------------------------


def nested_pair(a: int, b: int) -> np.ndarray:
    """Boxes [0,0,a,1] and [0,0,b,1] (a < b): inter a, union b, IoU = fl(a / b) exactly."""
    return np.array([[0, 0, a, 1], [0, 0, b, 1]], np.float32)


def shifted_pair(w: int, shift: int) -> np.ndarray:
    """Boxes [0,0,w,1] and [shift,0,w+shift,1]: IoU = fl((w - shift) / (w + shift))."""
    return np.array([[0, 0, w, 1], [shift, 0, w + shift, 1]], np.float32)


# -- comparisons ---------------------------------------------------------------------------------


def assert_bits_equal(a: np.ndarray, b: np.ndarray, name: str = "") -> None:
    """Same dtype, shape and bits, up to NaN payloads and the sign of zero (docs/nms.md: ONNX
    Runtime's Where returns +0.0 for a selected -0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (
        f"{name}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    )
    if a.dtype.kind == "f":
        a, b = a + a.dtype.type(0), b + b.dtype.type(0)  # -0.0 + 0.0 == +0.0
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        assert np.array_equal(nan_a, nan_b), f"{name}: NaN positions differ"
        ia, ib = a.view(np.int32)[~nan_a], b.view(np.int32)[~nan_b]
        assert np.array_equal(ia, ib), f"{name}: values differ\n{a}\n{b}"
    else:
        assert np.array_equal(a, b), f"{name}: values differ\n{a}\n{b}"


def assert_same_output(got, want, fields=NMSOutput._fields) -> None:
    for name in fields:
        assert_bits_equal(
            getattr(got, name) if hasattr(got, name) else got[name], getattr(want, name), name
        )


# -- the spec restated declaratively (checks the reference oracle itself) ------------------------


def check_against_spec(boxes, scores, p: NMSParams, out: NMSOutput, anchors=None) -> None:
    """Check ``out`` for one batch against docs/nms.md stated as properties, not as a loop."""
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    dec = decode(boxes, None if anchors is None else np.asarray(anchors, np.float32), p)
    act = activate(scores, p)
    k = p.max_output_boxes
    for b in range(scores.shape[0]):
        cands = [
            (act[b, n, c], n, c)
            for n in range(scores.shape[1])
            for c in range(scores.shape[2])
            if c != p.background_class and act[b, n, c] > np.float32(p.score_threshold)
        ]
        cands.sort(key=lambda t: (-t[0], t[1], t[2]))
        cands = cands[: p.top_k or None]
        box = (lambda n, c, b=b: dec[b, n, c]) if dec.ndim == 4 else (lambda n, c, b=b: dec[b, n])
        num = int(out.num_dets[b, 0])
        kept = [(int(out.det_indices[b, i]), int(out.det_classes[b, i])) for i in range(num)]
        rank = {(n, c): r for r, (_, n, c) in enumerate(cands)}
        assert all(key in rank for key in kept), "a detection is not a candidate"
        assert [rank[key] for key in kept] == sorted(rank[key] for key in kept), (
            "detections not in rank order"
        )
        for i, (n, c) in enumerate(kept):
            assert out.det_scores[b, i] == act[b, n, c] and np.array_equal(
                out.det_boxes[b, i], box(n, c), equal_nan=True
            )
        same = (lambda c1, c2: True) if p.class_agnostic else (lambda c1, c2: c1 == c2)
        for i, (n1, c1) in enumerate(kept):  # no kept box suppresses a later kept one
            for n2, c2 in kept[i + 1 :]:
                assert not (
                    same(c1, c2) and iou(box(n1, c1), box(n2, c2)) > np.float32(p.iou_threshold)
                )
        # everything ranked before this is decided
        last = rank[kept[-1]] if num == k else len(cands)
        for _, n, c in cands[:last]:
            if (n, c) not in kept:
                assert any(
                    rank[(n2, c2)] < rank[(n, c)]
                    and same(c, c2)
                    and iou(box(n2, c2), box(n, c)) > np.float32(p.iou_threshold)
                    for n2, c2 in kept
                ), f"candidate {(n, c)} dropped without a suppressor"
        assert 0 <= num <= k and num <= len(cands)
        pad = slice(num, None)
        assert (
            not out.det_boxes[b, pad].any()
            and not out.det_scores[b, pad].any()
            and not out.det_classes[b, pad].any()
        )
        assert (out.det_indices[b, pad] == -1).all()


# -- ONNX models ---------------------------------------------------------------------------------


def raw_model(
    n: int, c: int, per_class: bool = False, opset: int = 17, batch="batch", elem_type=None
):
    """An ONNX model that passes graph inputs in_boxes / in_scores through to raw outputs boxes /
    scores."""
    from onnx import TensorProto, helper

    elem_type = TensorProto.FLOAT if elem_type is None else elem_type
    bshape = [batch, n, c, 4] if per_class else [batch, n, 4]
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["in_boxes"], ["boxes"]),
            helper.make_node("Identity", ["in_scores"], ["scores"]),
        ],
        "raw",
        [
            helper.make_tensor_value_info("in_boxes", elem_type, bshape),
            helper.make_tensor_value_info("in_scores", elem_type, [batch, n, c]),
        ],
        [
            helper.make_tensor_value_info("boxes", elem_type, bshape),
            helper.make_tensor_value_info("scores", elem_type, [batch, n, c]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_ort(model, boxes: np.ndarray, scores: np.ndarray, **extra) -> dict[str, np.ndarray]:
    """Run ``model`` (or an InferenceSession) on in_boxes / in_scores plus ``extra`` named
    inputs."""
    import onnxruntime as ort

    sess = (
        model
        if isinstance(model, ort.InferenceSession)
        else ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    )
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"in_boxes": boxes, "in_scores": scores, **extra})))
