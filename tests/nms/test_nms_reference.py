"""The oracle against the spec stated as properties, plus hand-worked examples (docs/nms.md)."""

import numpy as np
import pytest
from hypothesis import given, settings
from nms_cases import cases, check_against_spec, nested_pair, shifted_pair

from edgedet.errors import InputError
from edgedet.nms import NMSParams, reference_nms
from edgedet.nms.boxes import iou


@settings(max_examples=150, deadline=None)
@given(cases())
def test_reference_satisfies_the_spec(case):
    boxes, scores, p, anchors = case
    check_against_spec(boxes, scores, p, reference_nms(boxes, scores, p, anchors), anchors)


def one(boxes, scores, **kw):
    """Single image, single class helper: boxes [N, 4], scores [N]."""
    p = NMSParams(**{"score_threshold": 0.0, "top_k": 0, **kw})
    return reference_nms(
        np.asarray(boxes, np.float32)[None], np.asarray(scores, np.float32)[None, :, None], p
    )


def test_hand_worked_example():
    boxes = [[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 9]]
    out = one(boxes, [0.9, 0.8, 0.7, 0.95], iou_threshold=0.5, max_output_boxes=5)
    # box 3 (0.95) is kept first and suppresses box 0 (IoU 90/100); box 1 overlaps box 3 by 20/170
    assert out.num_dets.tolist() == [[3]]
    assert out.det_indices[0, :3].tolist() == [3, 1, 2]
    assert out.det_scores.dtype == np.float32 and out.det_indices[0, 3:].tolist() == [-1, -1]


@pytest.mark.parametrize(
    "a, b, thr, kept",
    [
        (1, 2, 0.5, 2),  # IoU exactly 0.5: not > 0.5, both kept
        (1, 2, 0.49, 1),  # ... > 0.49: suppressed
        # IoU fl(3/5) == fl(0.6): equal, kept (torchvision compares in float64 and drops it)
        (
            3,
            5,
            0.6,
            2,
        ),
        (1, 3, 1 / 3, 2),
        (2, 2, 1.0, 2),  # identical boxes, IoU 1: only a threshold below 1 suppresses
        (2, 2, 0.999, 1),
    ],
)
def test_exact_iou_boundaries(a, b, thr, kept):
    assert iou(*nested_pair(a, b)) == np.float32(a / b)
    assert one(nested_pair(a, b), [0.9, 0.8], iou_threshold=thr).num_dets[0, 0] == kept


def test_shifted_boxes_at_exact_iou():
    pair = shifted_pair(3, 1)  # inter 2, union 4
    assert iou(*pair) == np.float32(0.5)
    assert one(pair, [0.9, 0.8], iou_threshold=0.5).num_dets[0, 0] == 2


def test_score_threshold_is_strict_and_in_float32():
    assert one([[0, 0, 1, 1]], [0.25], score_threshold=0.25).num_dets[0, 0] == 0
    # float32(0.1) > 0.1 in float64, but the spec compares in float32: not a candidate
    assert one([[0, 0, 1, 1]], [0.1], score_threshold=0.1).num_dets[0, 0] == 0


def test_ties_break_by_anchor_then_class():
    boxes = np.zeros((1, 3, 4), np.float32) + [0, 0, 1, 1]
    scores = np.full((1, 3, 2), 0.5, np.float32)
    out = reference_nms(
        boxes, scores, NMSParams(score_threshold=0, class_agnostic=False, max_output_boxes=6)
    )
    assert out.det_indices[0].tolist() == [0, 0, -1, -1, -1, -1] and out.det_classes[
        0, :2
    ].tolist() == [0, 1]


def test_nan_and_inf_scores():
    out = one(
        [[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]],
        [np.nan, np.inf, -np.inf],
        score_threshold=-1e30,
    )
    assert out.num_dets[0, 0] == 1 and out.det_indices[0, 0] == 1 and out.det_scores[0, 0] == np.inf


def test_inverted_boxes_are_canonicalised():
    out = one([[10, 10, 0, 0]], [0.9])
    assert out.det_boxes[0, 0].tolist() == [0, 0, 10, 10]


def test_centre_size_and_anchor_decode():
    p = NMSParams(score_threshold=0, box_coding=1, box_scale=(10, 10, 5, 5), top_k=0)
    anchors = np.array([[[10, 20, 4, 8]]], np.float32)  # cx, cy, w, h
    deltas = np.array([[[10, -10, 5 * np.log(2), 0]]], np.float32)
    out = reference_nms(deltas, np.ones((1, 1, 1), np.float32), p, anchors)
    # cx = 10 + 1 * 4, cy = 20 - 1 * 8, w = 4 * 2, h = 8
    np.testing.assert_allclose(out.det_boxes[0, 0], [10, 8, 18, 16], rtol=1e-6)


def test_decode_clamps_huge_deltas():
    p = NMSParams(score_threshold=0, box_coding=1)
    out = reference_nms(
        np.array([[[0, 0, 1e9, 1e9]]], np.float32),
        np.ones((1, 1, 1), np.float32),
        p,
        np.array([[[0, 0, 16, 16]]], np.float32),
    )
    assert np.isfinite(out.det_boxes).all() and out.det_boxes[0, 0, 2] == pytest.approx(
        500, rel=1e-5
    )


@pytest.mark.parametrize(
    "boxes, scores, anchors, match",
    [
        (np.zeros((1, 3, 4)), np.zeros((1, 3)), None, "'scores' has shape"),
        (np.zeros((1, 3, 5)), np.zeros((1, 3, 2)), None, "'boxes' has shape"),
        (np.zeros((1, 3, 4), np.int32), np.zeros((1, 3, 2)), None, "'boxes' has dtype int32"),
        (np.zeros((1, 3, 4)), np.zeros((1, 3, 2), bool), None, "'scores' has dtype bool"),
        (np.zeros((2, 3, 4)), np.zeros((2, 3, 2)), np.zeros((3, 3, 4)), "'anchors' has shape"),
    ],
)
def test_bad_inputs_name_the_tensor(boxes, scores, anchors, match):
    with pytest.raises(InputError, match=match):
        reference_nms(boxes, scores, NMSParams(), anchors)
