"""The ``edgedet`` NMS implementation: one EdgeDetNMS custom node plus a model-local function whose
body reads the node's attributes. ONNX Runtime runs the function; it must equal the oracle exactly
like the ``graph`` implementation does, for every parameter combination, with one body serving nodes
whose parameters differ."""

import numpy as np
import pytest
from hypothesis import given, settings
from nms_cases import assert_same_output, cases, exact_arithmetic, raw_model, run_ort

from edgedet import contract
from edgedet.errors import ExportError, InputError
from edgedet.nms import NMSParams, opdef, reference_nms

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from edgedet.onnx.engine.strip import inspect_nms, strip_nms_function  # noqa: E402
from edgedet.onnx.nms import attach_nms  # noqa: E402
from edgedet.onnx.nms.edgedet_op import (
    add_function_bodies,
    make_node,
    nms_nodes,
    params_from_node,
)  # noqa: E402

CONTRACT = list(contract.NMS_OUTPUTS)


def op_nms(boxes, scores, p, anchors=None, **kwargs):
    n, c = scores.shape[1:]
    model = attach_nms(raw_model(n, c, boxes.ndim == 4), p, "edgedet", anchors=anchors, **kwargs)
    onnx.checker.check_model(model, full_check=True)
    return model


@settings(max_examples=40, deadline=None)
@given(cases(min_n=1, anchors=False).filter(exact_arithmetic))
def test_function_equals_reference_bit_for_bit(case):
    boxes, scores, p, _ = case
    got = run_ort(op_nms(boxes, scores, p), boxes, scores)
    assert_same_output(got, reference_nms(boxes, scores, p), CONTRACT)


@settings(max_examples=15, deadline=None)
@given(cases(min_n=1, anchors=True, max_b=1).filter(exact_arithmetic))
def test_function_corner_anchor_decode_bit_for_bit(case):
    boxes, scores, p, anchors = case
    got = run_ort(op_nms(boxes, scores, p, anchors[0]), boxes, scores)
    assert_same_output(got, reference_nms(boxes, scores, p, anchors[:1]), CONTRACT)


@pytest.mark.parametrize("per_class", [False, True])
def test_sigmoid_and_centre_size_decode_to_float_tolerance(per_class):
    rng = np.random.default_rng(7)
    n, c = 60, 3
    anchors = np.concatenate(
        [rng.uniform(0, 100, (1, n, 2)), rng.uniform(5, 40, (1, n, 2))], -1
    ).astype(np.float32)
    deltas = rng.normal(0, 1, (2, n, c, 4) if per_class else (2, n, 4)).astype(np.float32)
    logits = rng.normal(0, 3, (2, n, c)).astype(np.float32)
    p = NMSParams(
        score_threshold=0.3,
        iou_threshold=0.4,
        max_output_boxes=20,
        top_k=50,
        score_activation=True,
        box_coding=1,
        box_scale=(10, 10, 5, 5),
    )
    got, want = (
        run_ort(op_nms(deltas, logits, p, anchors), deltas, logits),
        reference_nms(deltas, logits, p, anchors),
    )
    np.testing.assert_array_equal(got["num_dets"], want.num_dets)
    np.testing.assert_array_equal(got["det_classes"], want.det_classes)
    np.testing.assert_allclose(got["det_scores"], want.det_scores, rtol=1e-6)
    np.testing.assert_allclose(got["det_boxes"], want.det_boxes, rtol=1e-5, atol=1e-5)


def test_node_carries_the_plugin_lookup_attributes_and_the_params():
    p = NMSParams(
        score_threshold=0.3,
        iou_threshold=0.6,
        max_output_boxes=7,
        top_k=5000,
        background_class=0,
        score_activation=True,
        class_agnostic=True,
        box_coding=1,
        box_scale=(10, 10, 5, 5),
    )
    model = attach_nms(raw_model(9, 2), p, "edgedet")
    (node,) = nms_nodes(model)
    assert (node.op_type, node.domain) == (opdef.OP_TYPE, opdef.OP_DOMAIN)
    # float attributes
    f32 = {k: float(np.float32(getattr(p, k))) for k in ("score_threshold", "iou_threshold")}
    assert params_from_node(node) == p.replace(**f32)
    info = inspect_nms(model)
    assert info.has_function and info.nodes and not info.attribute_problems
    stripped, removed = strip_nms_function(model)
    assert removed and not stripped.functions and nms_nodes(stripped)


def test_run_time_thresholds_change_results_without_re_export():
    n, c, k = 40, 3, 120
    rng = np.random.default_rng(3)
    boxes = rng.uniform(0, 30, (2, n, 4)).astype(np.float32)
    boxes[..., 2:] += boxes[..., :2]
    scores = rng.random((2, n, c)).astype(np.float32)
    p = NMSParams(score_threshold=0.5, iou_threshold=0.5, max_output_boxes=k, top_k=0)
    model = op_nms(boxes, scores, p, runtime_thresholds=True)
    assert [i.name for i in model.graph.input][-2:] == list(contract.THRESHOLD_INPUTS)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    counts = set()
    for st, it in ((0.5, 0.5), (0.2, 0.3), (0.8, 0.9)):
        got = run_ort(
            sess,
            boxes,
            scores,
            score_threshold=np.array([st], np.float32),
            iou_threshold=np.array([it], np.float32),
        )
        assert_same_output(
            got,
            reference_nms(boxes, scores, p.replace(score_threshold=st, iou_threshold=it)),
            CONTRACT,
        )
        counts.add(int(got["num_dets"].sum()))
    assert len(counts) == 3
    with pytest.raises(InputError, match="need --nms edgedet"):
        attach_nms(raw_model(n, c), p, "graph", runtime_thresholds=True)


def _function(model):
    (fn,) = [f for f in model.functions if f.name == opdef.OP_TYPE]
    return fn


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("thresholds", [False, True])
@pytest.mark.parametrize("with_anchors", [False, True])
def test_node_inputs_are_contiguous_with_their_roles_stated(with_anchors, thresholds, per_class):
    """TensorRT's ONNX parser turns an empty input name into a null tensor, and its local-function
    importer needs as many node inputs as formal inputs: no gaps, roles in attributes, every
    combination equal to the oracle.
    """
    rng = np.random.default_rng(3)
    n, c = 24, 3
    anchors = np.concatenate(
        [rng.uniform(0, 50, (1, n, 2)), rng.uniform(5, 20, (1, n, 2))], -1
    ).astype(np.float32)
    anchors[..., 2:] += anchors[..., :2]
    boxes = rng.uniform(0, 50, (2, n, c, 4) if per_class else (2, n, 4)).astype(np.float32)
    if not with_anchors:
        boxes[..., 2:] += boxes[..., :2]
    scores = rng.random((2, n, c)).astype(np.float32)
    p = NMSParams(score_threshold=0.3, iou_threshold=0.5, max_output_boxes=10, top_k=40)
    model = op_nms(
        boxes, scores, p, anchors[0] if with_anchors else None, runtime_thresholds=thresholds
    )
    (node,) = nms_nodes(model)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert "" not in node.input and len(node.input) == 2 + with_anchors + 2 * thresholds
    assert (attrs[opdef.HAS_ANCHORS], attrs[opdef.THRESHOLD_INPUTS]) == (
        int(with_anchors),
        2 * int(thresholds),
    )
    assert (
        list(_function(model).input)
        == ["boxes", "scores"]
        + ["anchors"] * with_anchors
        + ["score_threshold", "iou_threshold"] * thresholds
    )
    extra, q = {}, p
    if thresholds:
        extra = {
            "score_threshold": np.array([0.2], np.float32),
            "iou_threshold": np.array([0.4], np.float32),
        }
        q = p.replace(score_threshold=0.2, iou_threshold=0.4)
    got = run_ort(model, boxes, scores, **extra)
    want = reference_nms(boxes, scores, q, anchors if with_anchors else None)
    assert want.num_dets.sum() > 0
    np.testing.assert_array_equal(got["num_dets"], want.num_dets)
    np.testing.assert_array_equal(got["det_classes"], want.det_classes)
    np.testing.assert_allclose(got["det_boxes"], want.det_boxes, rtol=1e-5, atol=1e-4)


def test_older_positional_nodes_are_rewritten_contiguous():
    """A node as edgedet wrote it before (score/iou thresholds after an empty anchors slot) gets the
    contiguous form."""
    model = two_node_model(4, 2, NMSParams(), NMSParams())
    for node in model.graph.node:
        del node.attribute[:]
        node.input.extend(["", "st", "it"])
    add_function_bodies(model)
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert node.input[2:] == ["st", "it"] and (
            attrs[opdef.HAS_ANCHORS],
            attrs[opdef.THRESHOLD_INPUTS],
        ) == (0, 2)
    assert list(_function(model).input) == ["boxes", "scores", "score_threshold", "iou_threshold"]
    with pytest.raises(ExportError, match="needs a score_threshold input"):
        make_node(["b", "s", "", "", "it"], CONTRACT, NMSParams(), "bad")


def test_float16_inputs_compute_in_float32_and_output_the_contract_types():
    rng = np.random.default_rng(1)
    boxes = rng.uniform(0, 10, (1, 9, 4)).astype(np.float16)
    boxes[..., 2:] += boxes[..., :2]
    scores = rng.random((1, 9, 2)).astype(np.float16)
    p = NMSParams(score_threshold=0.1)
    model = attach_nms(raw_model(9, 2, elem_type=TensorProto.FLOAT16), p, "edgedet")
    onnx.checker.check_model(model, full_check=True)
    (node,) = nms_nodes(model)
    assert node.input[:2] == ["boxes", "scores"]  # the node itself takes float16
    got = run_ort(model, boxes, scores)
    assert got["det_boxes"].dtype == np.float32
    # the reference computes in float32 too; fp16 outputs round
    want = reference_nms(boxes, scores, p)
    np.testing.assert_array_equal(got["num_dets"], want.num_dets)
    np.testing.assert_array_equal(got["det_classes"], want.det_classes)
    np.testing.assert_array_equal(
        got["det_scores"], want.det_scores.astype(np.float16).astype(np.float32)
    )
    np.testing.assert_array_equal(
        got["det_boxes"], want.det_boxes.astype(np.float16).astype(np.float32)
    )


def two_node_model(n, c, p1: NMSParams, p2: NMSParams):
    """Two EdgeDetNMS nodes with different parameters and box layouts ([B,N,4] and [B,N,C,4]) in one
    graph."""

    def vi(name, elem, shape):
        return helper.make_tensor_value_info(name, elem, shape)

    nodes = [
        make_node(["b1", "s"], [f"a_{o}" for o in CONTRACT], p1, "nms1"),
        make_node(["b2", "s"], [f"b_{o}" for o in CONTRACT], p2, "nms2"),
    ]
    outs = []
    for prefix, k in (("a", p1.max_output_boxes), ("b", p2.max_output_boxes)):
        shapes = {
            "num_dets": [1, 1],
            "det_boxes": [1, k, 4],
            "det_scores": [1, k],
            "det_classes": [1, k],
        }
        outs += [
            vi(
                f"{prefix}_{o}",
                TensorProto.INT32 if o in ("num_dets", "det_classes") else TensorProto.FLOAT,
                shapes[o],
            )
            for o in CONTRACT
        ]
    graph = helper.make_graph(
        nodes,
        "two",
        [vi("b1", 1, [1, n, 4]), vi("b2", 1, [1, n, c, 4]), vi("s", 1, [1, n, c])],
        outs,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_one_function_body_serves_nodes_with_different_parameters():
    n, c = 30, 4
    rng = np.random.default_rng(5)
    b1 = rng.uniform(0, 40, (1, n, 4)).astype(np.float32)
    b1[..., 2:] += b1[..., :2]
    b2 = rng.uniform(0, 40, (1, n, c, 4)).astype(np.float32)
    b2[..., 2:] += b2[..., :2]
    s = rng.random((1, n, c)).astype(np.float32)
    p1 = NMSParams(
        score_threshold=0.3, iou_threshold=0.5, max_output_boxes=12, top_k=20, class_agnostic=True
    )
    p2 = NMSParams(
        score_threshold=0.1,
        iou_threshold=0.4,
        max_output_boxes=150,
        top_k=0,
        background_class=0,
        score_activation=True,
    )
    model = add_function_bodies(two_node_model(n, c, p1, p2))
    assert len(model.functions) == 1
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(
        zip([o.name for o in sess.get_outputs()], sess.run(None, {"b1": b1, "b2": b2, "s": s}))
    )
    assert_same_output(
        {k[2:]: v for k, v in got.items() if k.startswith("a_")}, reference_nms(b1, s, p1), CONTRACT
    )
    want2 = reference_nms(b2, s, p2)
    np.testing.assert_array_equal(got["b_num_dets"], want2.num_dets)
    np.testing.assert_array_equal(got["b_det_classes"], want2.det_classes)
    np.testing.assert_allclose(got["b_det_scores"], want2.det_scores, rtol=1e-6)
    # idempotent: replaced, not duplicated
    assert add_function_bodies(model).functions[0] == model.functions[0]
    assert len(model.functions) == 1


def test_function_body_errors():
    p = NMSParams()
    with pytest.raises(ExportError, match="opset >= 15"):
        attach_nms(raw_model(4, 2, opset=13), p, "edgedet")
    model = two_node_model(4, 2, p, p)
    # anchors on one node only
    model.graph.node[1].CopyFrom(
        make_node(["b2", "s", "b1"], list(model.graph.node[1].output), p, "nms2")
    )
    with pytest.raises(ExportError, match="differ in which optional inputs"):
        add_function_bodies(model)
    model.graph.node[1].input.append("extra")  # more inputs than its role attributes say
    with pytest.raises(ExportError, match="has 4 inputs.*has_anchors=1, threshold_inputs=0"):
        add_function_bodies(model)
    with pytest.raises(ExportError, match="too large"):
        # within the plugin, not the graph
        attach_nms(raw_model(30000, 1000), NMSParams(top_k=65536), "edgedet")


@pytest.mark.parametrize("n, c, top_k", [(8400, 80, 0), (100000, 1, 0), (8400, 80, 70000)])
def test_more_candidates_than_the_plugin_takes_are_refused_at_export(n, c, top_k):
    """The kernels cap M = min(top_k or N*C, N*C) at 65536: such an engine would build, then fail
    every call."""
    with pytest.raises(
        ExportError,
        match=r"exceed the EdgeDetNMS plugin's limit of 65536; export with --top-k 65536",
    ):
        attach_nms(raw_model(n, c), NMSParams(top_k=top_k), "edgedet")


def test_plugin_limit_matches_the_kernels_header():
    import re
    from pathlib import Path

    header = (Path(opdef.__file__).parent.parent / "csrc" / "nms_kernels.h").read_text()
    assert (
        int(re.search(r"#define EDGEDET_NMS_MAX_CANDIDATES (\d+)", header).group(1))
        == opdef.PLUGIN_MAX_CANDIDATES
    )
    # the usual top_k is fine
    model = attach_nms(raw_model(8400, 80), NMSParams(top_k=1000), "edgedet")
    assert len(nms_nodes(model)) == 1
