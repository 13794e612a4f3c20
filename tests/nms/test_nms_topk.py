"""End-to-end heads: score threshold + top-k without NMS, on the host (edgedet.nms.topk) and in the
graph (edgedet/onnx/nms/topk.py). The host path equals the NMS oracle with IoU 1.0 (nothing is
suppressed); the graph equals the host path bit for bit, ties, thresholds and K > candidates
included."""

import numpy as np
import pytest
from hypothesis import given, settings
from nms_cases import (
    assert_bits_equal,
    assert_same_output,
    cases,
    exact_arithmetic,
    raw_model,
    run_ort,
)

from edgedet import contract
from edgedet.errors import ExportError, InputError
from edgedet.nms import NMSParams, reference_nms
from edgedet.nms.topk import TRT_MAX_TOPK, end_to_end_params, select_topk

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from edgedet.onnx.nms.topk import attach_topk  # noqa: E402

CONTRACT = list(contract.NMS_OUTPUTS)


def graph_topk(boxes, scores, p, labels=None, threshold=None):
    n, c = scores.shape[1:]
    model = raw_model(n, c)
    extra = {}
    if labels is not None:  # a third graph input passed through to a raw `labels` output
        from onnx import TensorProto, helper

        model.graph.input.append(
            helper.make_tensor_value_info("in_labels", TensorProto.INT64, ["batch", n])
        )
        model.graph.node.append(helper.make_node("Identity", ["in_labels"], ["labels"]))
        model.graph.output.append(
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch", n])
        )
        extra["in_labels"] = labels.astype(np.int64)
    model = attach_topk(
        model,
        p,
        labels="labels" if labels is not None else None,
        runtime_threshold=threshold is not None,
    )
    onnx.checker.check_model(model, full_check=True)
    if threshold is not None:
        extra[contract.SCORE_THRESHOLD_INPUT] = np.array([threshold], np.float32)
    return run_ort(model, boxes, scores, **extra)


@settings(max_examples=60, deadline=None)
@given(cases(min_n=1, anchors=False, per_class=False))
def test_host_equals_the_nms_oracle_with_nothing_suppressed(case):
    boxes, scores, p, _ = case
    want = reference_nms(boxes, scores, p.replace(iou_threshold=1.0, top_k=0))
    assert_same_output(select_topk(boxes, scores, p), want)


@settings(max_examples=60, deadline=None)
@given(cases(min_n=1, anchors=False, per_class=False).filter(exact_arithmetic))
def test_graph_equals_host_bit_for_bit(case):
    boxes, scores, p, _ = case
    assert_same_output(graph_topk(boxes, scores, p), select_topk(boxes, scores, p), CONTRACT)


def test_ties_thresholds_and_k_larger_than_candidates():
    # 6 boxes x 2 classes; equal scores everywhere they tie, one score exactly at the threshold
    boxes = np.arange(6 * 4, dtype=np.float32).reshape(1, 6, 4)
    scores = np.array(
        [[[0.5, 0.5], [0.9, 0.5], [0.25, 0.7], [0.5, 0.9], [np.nan, 0.1], [0.5, -np.inf]]],
        np.float32,
    )
    p = NMSParams(score_threshold=0.25, max_output_boxes=20)
    host = select_topk(boxes, scores, p)
    # 0.9 (n1,c0) < flat index than 0.9 (n3,c1); then 0.7; then the five 0.5 in flat-index order;
    # 0.25 is not > 0.25
    assert host.num_dets[0, 0] == 8
    assert host.det_classes[0, :8].tolist() == [0, 1, 1, 0, 1, 1, 0, 0]
    assert host.det_indices[0, :8].tolist() == [1, 3, 2, 0, 0, 1, 3, 5]
    assert not host.det_scores[0, 8:].any() and not host.det_boxes[0, 8:].any()
    assert_same_output(graph_topk(boxes, scores, p), host, CONTRACT)
    cut = p.replace(max_output_boxes=3)  # K cuts inside the tied 0.5 group by flat index
    assert select_topk(boxes, scores, cut).det_indices[0].tolist() == [1, 3, 2]
    assert_same_output(graph_topk(boxes, scores, cut), select_topk(boxes, scores, cut), CONTRACT)


@pytest.mark.parametrize("threshold", [-1.0, 0.0, 0.25, 0.5, 0.89999, 0.9, 2.0])
def test_runtime_threshold_input_equals_a_baked_threshold(threshold):
    rng = np.random.default_rng(1)
    boxes = rng.uniform(0, 50, (2, 30, 4)).astype(np.float32)
    # many ties
    scores = rng.choice(np.float32([0.0, 0.25, 0.5, 0.9, 1.0]), (2, 30, 4)).astype(np.float32)
    # 120 candidates > K = 50 at low thresholds
    p = NMSParams(score_threshold=0.25, max_output_boxes=50)
    got = graph_topk(boxes, scores, p, threshold=threshold)
    assert_same_output(
        got, select_topk(boxes, scores, p.replace(score_threshold=threshold)), CONTRACT
    )


@pytest.mark.parametrize("background", [-1, 2])
def test_labels_one_class_per_box(background):
    rng = np.random.default_rng(2)
    n = 40
    boxes = rng.uniform(0, 99, (2, n, 4)).astype(np.float32)
    scores = rng.choice(np.float32([0.1, 0.3, 0.6, 0.6, 0.95]), (2, n, 1)).astype(np.float32)
    labels = rng.integers(0, 5, (2, n))
    p = NMSParams(score_threshold=0.2, max_output_boxes=25, background_class=background)
    host = select_topk(boxes, scores, p, labels)
    # restated: the rows above the threshold, not background, by score then index
    for b in range(2):
        rows = [
            i for i in range(n) if scores[b, i, 0] > np.float32(0.2) and labels[b, i] != background
        ]
        rows = sorted(rows, key=lambda i: (-scores[b, i, 0], i))[:25]
        assert host.det_indices[b, : len(rows)].tolist() == rows
        assert host.det_classes[b, : len(rows)].tolist() == labels[b, rows].tolist()
        assert host.num_dets[b, 0] == len(rows) > 0
    assert_same_output(graph_topk(boxes, scores, p, labels), host, CONTRACT)


def test_float16_outputs_and_centre_size_boxes():
    rng = np.random.default_rng(3)
    cxcywh = np.concatenate(
        [rng.uniform(10, 90, (1, 12, 2)), rng.uniform(1, 20, (1, 12, 2))], -1
    ).astype(np.float16)
    scores = rng.uniform(0, 1, (1, 12, 3)).astype(np.float16)
    p = NMSParams(score_threshold=0.3, max_output_boxes=10, box_coding=1)
    model = attach_topk(raw_model(12, 3, elem_type=onnx.TensorProto.FLOAT16), p)
    got = run_ort(model, cxcywh, scores)
    assert got["det_scores"].dtype == np.float32 and got["num_dets"][0, 0] == 10
    assert_same_output(got, select_topk(cxcywh, scores, p), CONTRACT)


def test_tensorrt_topk_limit_is_enforced():
    # M = 3000 < K: pads
    ok = attach_topk(raw_model(1000, 3), NMSParams(max_output_boxes=TRT_MAX_TOPK))
    assert ok.graph.output[1].type.tensor_type.shape.dim[1].dim_value == TRT_MAX_TOPK
    with pytest.raises(ExportError, match="3840"):
        attach_topk(raw_model(2000, 2), NMSParams(max_output_boxes=TRT_MAX_TOPK + 1))


def test_refusals_name_the_tensor():
    with pytest.raises(ExportError, match="'nope'"):
        attach_topk(raw_model(5, 2), NMSParams(), boxes="nope")
    with pytest.raises(InputError, match="labels"):
        select_topk(
            np.zeros((1, 5, 4), np.float32),
            np.zeros((1, 5, 2), np.float32),
            NMSParams(),
            labels=np.zeros((1, 5)),
        )
    with pytest.raises(InputError, match="labels"):
        select_topk(
            np.zeros((1, 5, 4), np.float32),
            np.zeros((1, 5, 1), np.float32),
            NMSParams(),
            labels=np.zeros((1, 4)),
        )


def test_end_to_end_params_make_nms_equal_the_selection():
    """The manifest's params (IoU 1.0, top_k 0): even the NMS computes the same selection."""
    rng = np.random.default_rng(4)
    boxes = rng.uniform(0, 20, (1, 50, 4)).astype(np.float32)  # heavy overlaps: NMS would suppress
    scores = rng.uniform(0, 1, (1, 50, 3)).astype(np.float32)
    p = end_to_end_params(score_threshold=0.2, max_output_boxes=60)
    from edgedet.nms.host import batched_nms

    assert_same_output(batched_nms(boxes, scores, p), select_topk(boxes, scores, p))
    assert_bits_equal(select_topk(boxes, scores, p).num_dets, np.array([[60]], np.int32))
