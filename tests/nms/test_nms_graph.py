"""The standard-ops ONNX NMS graph (edgedet/onnx/nms, implementation "graph") in ONNX Runtime equals
the
reference: bit for bit where the spec is pure float32 arithmetic, to float tolerance where exp is
involved (sigmoid, centre-size anchor decode), and it passes the ONNX checker."""

import numpy as np
import pytest
from hypothesis import given, settings
from nms_cases import assert_same_output, cases, exact_arithmetic, raw_model, run_ort

from edgedet import contract
from edgedet.errors import ExportError, InputError
from edgedet.nms import NMSParams, reference_nms

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from edgedet.onnx.builder import NodeBuilder  # noqa: E402
from edgedet.onnx.nms import IMPLEMENTATIONS, attach_nms  # noqa: E402
from edgedet.onnx.nms.body import build_nms  # noqa: E402

CONTRACT = list(contract.NMS_OUTPUTS)


def graph_nms(boxes, scores, p, anchors=None, opset=17):
    n, c = scores.shape[1:]
    model = attach_nms(raw_model(n, c, boxes.ndim == 4, opset), p, "graph", anchors=anchors)
    onnx.checker.check_model(model, full_check=True)
    return run_ort(model, boxes, scores)


@settings(max_examples=80, deadline=None)
@given(cases(min_n=1, anchors=False).filter(exact_arithmetic))
def test_graph_equals_reference_bit_for_bit(case):
    boxes, scores, p, _ = case
    assert_same_output(graph_nms(boxes, scores, p), reference_nms(boxes, scores, p), CONTRACT)


@settings(max_examples=25, deadline=None)
@given(cases(min_n=1, anchors=True, max_b=1).filter(exact_arithmetic))
def test_graph_corner_anchor_decode_bit_for_bit(case):
    boxes, scores, p, anchors = case
    assert_same_output(
        graph_nms(boxes, scores, p, anchors[0]),
        reference_nms(boxes, scores, p, anchors[:1]),
        CONTRACT,
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("per_class", [False, True])
def test_graph_with_exp_matches_to_float_tolerance(seed, per_class):
    """Sigmoid and centre-size anchor decode use exp, which ORT and numpy round differently (<= 2
    ulp);
    with continuous random inputs no decision sits that close to a threshold or a tie."""
    rng = np.random.default_rng(seed)
    n, c = 60, 3
    anchors = np.concatenate(
        [rng.uniform(0, 100, (1, n, 2)), rng.uniform(5, 40, (1, n, 2))], -1
    ).astype(np.float32)
    shape = (2, n, c, 4) if per_class else (2, n, 4)
    deltas = rng.normal(0, 1, shape).astype(np.float32)
    logits = rng.normal(0, 3, (2, n, c)).astype(np.float32)
    p = NMSParams(
        score_threshold=0.3,
        iou_threshold=0.4,
        max_output_boxes=20,
        top_k=50,
        score_activation=True,
        box_coding=1,
        box_scale=(10, 10, 5, 5),
        class_agnostic=bool(seed % 2),
    )
    got, want = graph_nms(deltas, logits, p, anchors), reference_nms(deltas, logits, p, anchors)
    np.testing.assert_array_equal(got["num_dets"], want.num_dets)
    np.testing.assert_array_equal(got["det_classes"], want.det_classes)
    np.testing.assert_allclose(got["det_scores"], want.det_scores, rtol=1e-6)
    np.testing.assert_allclose(got["det_boxes"], want.det_boxes, rtol=1e-5, atol=1e-5)


def test_sigmoid_keeps_nan_out_and_saturates_like_the_reference():
    logits = np.array([[[np.nan], [-20.0], [20.0], [np.inf], [-np.inf]]], np.float32)
    boxes = (np.arange(20).reshape(1, 5, 4) * 10 + [0, 0, 5, 5]).astype(np.float32)
    p = NMSParams(score_threshold=0.0, score_activation=True, max_output_boxes=6)
    got, want = graph_nms(boxes, logits, p), reference_nms(boxes, logits, p)
    assert want.num_dets[0, 0] == 3  # sigmoid(-20) = 2e-9 > 0 is a candidate; NaN and -inf are not
    np.testing.assert_array_equal(got["num_dets"], want.num_dets)
    np.testing.assert_allclose(got["det_scores"], want.det_scores, rtol=1e-6)


def test_dynamic_batch_and_checker():
    n, c = 7, 3
    p = NMSParams(score_threshold=0.2, max_output_boxes=10)
    model = attach_nms(raw_model(n, c), p)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    outs = {o.name: o.type.tensor_type for o in inferred.graph.output}
    assert list(outs) == CONTRACT
    dims = {k: [d.dim_param or d.dim_value for d in t.shape.dim] for k, t in outs.items()}
    assert dims == {
        "num_dets": ["batch", 1],
        "det_boxes": ["batch", 10, 4],
        "det_scores": ["batch", 10],
        "det_classes": ["batch", 10],
    }
    assert outs["num_dets"].elem_type == outs["det_classes"].elem_type == onnx.TensorProto.INT32
    rng = np.random.default_rng(0)
    for b in (1, 3):
        boxes = rng.uniform(0, 10, (b, n, 4)).astype(np.float32)
        scores = rng.random((b, n, c)).astype(np.float32)
        assert_same_output(run_ort(model, boxes, scores), reference_nms(boxes, scores, p), CONTRACT)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_opsets(opset):
    rng = np.random.default_rng(opset)
    boxes, scores = (
        rng.uniform(0, 10, (2, 9, 4)).astype(np.float32),
        rng.random((2, 9, 2)).astype(np.float32),
    )
    p = NMSParams(score_threshold=0.1, max_output_boxes=30, top_k=0)  # K > N * C: padded
    assert_same_output(
        graph_nms(boxes, scores, p, opset=opset), reference_nms(boxes, scores, p), CONTRACT
    )


def test_float16_raw_outputs_are_cast():
    rng = np.random.default_rng(1)
    boxes, scores = (
        rng.uniform(0, 10, (1, 9, 4)).astype(np.float16),
        rng.random((1, 9, 2)).astype(np.float16),
    )
    p = NMSParams(score_threshold=0.1)
    model = attach_nms(raw_model(9, 2, elem_type=onnx.TensorProto.FLOAT16), p)
    onnx.checker.check_model(model, full_check=True)
    assert_same_output(run_ort(model, boxes, scores), reference_nms(boxes, scores, p), CONTRACT)


def test_none_returns_the_model_unchanged():
    model = raw_model(4, 2)
    assert attach_nms(model, NMSParams(), "none") == model
    with pytest.raises(ExportError, match="anchors"):
        attach_nms(model, NMSParams(), "none", anchors=np.zeros((4, 4)))
    assert {"graph", "none"} <= set(IMPLEMENTATIONS)


@pytest.mark.parametrize(
    "model, kwargs, error, match",
    [
        (raw_model(4, 2), {"implementation": "magic"}, InputError, "unknown NMS implementation"),
        (raw_model(4, 2), {"boxes": "nope"}, ExportError, "no 'nope' output"),
        (raw_model("n", 2), {}, ExportError, "static N"),
        (raw_model(4, 2, opset=12), {}, ExportError, "opset >= 13"),
        (raw_model(4, 2), {"anchors": np.zeros((5, 4))}, ExportError, "anchors have shape"),
    ],
)
def test_attach_errors(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        attach_nms(model, NMSParams(), **kwargs)


def test_attach_twice_is_refused():
    once = attach_nms(raw_model(4, 2), NMSParams())
    once.graph.output.extend(raw_model(4, 2).graph.output)  # pretend raw outputs are still there
    with pytest.raises(ExportError, match="already has NMS outputs"):
        attach_nms(once, NMSParams())


def test_builder_as_local_function_with_run_time_thresholds():
    """The same builder output as an ONNX local function whose thresholds are graph inputs (phase
    2)."""
    from onnx import TensorProto, helper

    n, c, k = 12, 3, 8
    b = NodeBuilder("f/")
    out = build_nms(
        b,
        "boxes",
        "scores",
        NMSParams(max_output_boxes=k, top_k=0),
        n,
        c,
        False,
        score_threshold="score_threshold",
        iou_threshold="iou_threshold",
    )
    for name in CONTRACT:
        b.op("Identity", [out[name]], hint=name)
    results = [node.output[0] for node in b.nodes[-4:]]
    fn = b.function(
        "test.nms", "NMS", ["boxes", "scores", "score_threshold", "iou_threshold"], results
    )
    inputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["b", n, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", n, c]),
        helper.make_tensor_value_info("score_threshold", TensorProto.FLOAT, []),
        helper.make_tensor_value_info("iou_threshold", TensorProto.FLOAT, []),
    ]
    call = helper.make_node("NMS", [i.name for i in inputs], CONTRACT, domain="test.nms")
    shapes = {
        "num_dets": ["b", 1],
        "det_boxes": ["b", k, 4],
        "det_scores": ["b", k],
        "det_classes": ["b", k],
    }
    outputs = [
        helper.make_tensor_value_info(
            o,
            TensorProto.INT32 if o in ("num_dets", "det_classes") else TensorProto.FLOAT,
            shapes[o],
        )
        for o in CONTRACT
    ]
    model = helper.make_model(
        helper.make_graph([call], "g", inputs, outputs),
        functions=[fn],
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("test.nms", 1)],
    )
    onnx.checker.check_model(model, full_check=True)
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    boxes, scores = (
        rng.uniform(0, 20, (2, n, 4)).astype(np.float32),
        rng.random((2, n, c)).astype(np.float32),
    )
    for st, it in ((0.2, 0.5), (0.6, 0.1)):
        got = dict(
            zip(
                CONTRACT,
                sess.run(
                    None,
                    {
                        "boxes": boxes,
                        "scores": scores,
                        "score_threshold": np.array(st, np.float32),
                        "iou_threshold": np.array(it, np.float32),
                    },
                ),
            )
        )
        p = NMSParams(score_threshold=st, iou_threshold=it, max_output_boxes=k, top_k=0)
        assert_same_output(got, reference_nms(boxes, scores, p), CONTRACT)
