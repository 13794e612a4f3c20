"""The vectorised host path equals the oracle bit for bit (docs/nms.md), on hypothesis cases and on
realistic candidate sets large enough to take several greedy rounds."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nms_cases import assert_bits_equal, assert_same_output, cases, nested_pair

from edgedet.errors import InputError
from edgedet.nms import NMSParams, batched_nms, host, nms, reference_nms


@settings(max_examples=300, deadline=None)
@given(cases())
def test_host_equals_reference(case):
    boxes, scores, p, anchors = case
    assert_same_output(
        batched_nms(boxes, scores, p, anchors), reference_nms(boxes, scores, p, anchors)
    )


def small_rounds(two_sided: bool):
    """Tiny round sizes so small inputs exercise multi-round settling and both x-range searches."""
    return mock.patch.multiple(
        host,
        FIRST_PREFIX=2,
        PAIR_BUDGET=3,
        HIT_CHUNK=2,
        PRESELECT_FACTOR=1,
        TWO_SIDED_MIN=0 if two_sided else 1 << 30,
    )


@settings(max_examples=200, deadline=None)
@given(cases(max_n=12), st.booleans())
def test_host_equals_reference_in_small_rounds(case, two_sided):
    boxes, scores, p, anchors = case
    with small_rounds(two_sided):
        got = batched_nms(boxes, scores, p, anchors)
    assert_same_output(got, reference_nms(boxes, scores, p, anchors))


def clustered(n: int, c: int, seed: int, objects: int = 12):
    """Realistic candidates: jittered copies of a few objects, scores decaying from the best
    copy."""
    rng = np.random.default_rng(seed)
    centre, size = rng.uniform(20, 200, (objects, 2)), rng.uniform(8, 80, (objects, 2))
    owner = rng.integers(0, objects, n)
    jitter = rng.normal(0, 0.08, (n, 4))
    cxy, wh = centre[owner] + jitter[:, :2] * size[owner], size[owner] * np.exp(jitter[:, 2:])
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], 1).astype(np.float32)
    scores = (rng.random((n, c)) ** 4 * 0.3).astype(np.float32)
    scores[np.arange(n), rng.integers(0, c, objects)[owner]] += np.exp(
        -np.abs(jitter).sum(1) * 6
    ).astype(np.float32)
    return boxes[None], scores[None]


@pytest.mark.parametrize(
    "seed, n, c, agnostic, thr",
    [
        (0, 400, 3, False, 0.05),
        (1, 300, 1, True, 0.01),
        (2, 500, 8, False, 0.2),
        (3, 200, 4, True, 0.0),
    ],
)
def test_host_equals_reference_on_clustered_sets(seed, n, c, agnostic, thr):
    boxes, scores = clustered(n, c, seed)
    for k, top_k in ((300, 0), (20, 150)):
        p = NMSParams(
            score_threshold=thr,
            iou_threshold=0.5,
            max_output_boxes=k,
            top_k=top_k,
            class_agnostic=agnostic,
        )
        assert_same_output(batched_nms(boxes, scores, p), reference_nms(boxes, scores, p))


def test_sampled_preselection_keeps_top_k_exact(monkeypatch):
    monkeypatch.setattr(host, "PRESELECT_FACTOR", 2)
    boxes, scores = clustered(2000, 10, 5, objects=40)
    scores[0, ::7, 3] = 0.7  # a block of ties around the k-th score
    p = NMSParams(
        score_threshold=0.001,
        iou_threshold=0.6,
        max_output_boxes=100,
        top_k=300,
        background_class=2,
    )
    assert_same_output(batched_nms(boxes, scores, p), reference_nms(boxes, scores, p))


def test_float16_and_float64_inputs_compute_in_float32():
    boxes, scores = clustered(100, 3, 7)
    p = NMSParams(score_threshold=0.1)
    half = batched_nms(boxes.astype(np.float16), scores.astype(np.float16), p)
    assert half.det_boxes.dtype == np.float32 and half.det_scores.dtype == np.float32
    assert_same_output(half, reference_nms(boxes.astype(np.float16), scores.astype(np.float16), p))
    assert_same_output(
        batched_nms(boxes.astype(np.float64), scores, p), batched_nms(boxes, scores, p)
    )


def test_more_survivors_than_k_and_none_at_all():
    boxes = np.arange(40, dtype=np.float32).reshape(1, 10, 4) * [10, 10, 10, 10] + [0, 0, 5, 5]
    scores = np.linspace(0.9, 0.5, 10, dtype=np.float32).reshape(1, 10, 1)
    out = batched_nms(boxes, scores, NMSParams(score_threshold=0.1, max_output_boxes=4))
    assert out.num_dets[0, 0] == 4 and out.det_indices[0].tolist() == [0, 1, 2, 3]
    out = batched_nms(boxes, scores, NMSParams(score_threshold=0.95, max_output_boxes=4))
    assert out.num_dets[0, 0] == 0 and not out.det_boxes.any() and (out.det_indices == -1).all()


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(
            st.lists(
                st.lists(
                    st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, np.nan]), min_size=4, max_size=4
                ),
                min_size=n,
                max_size=n,
            ),
            st.lists(st.sampled_from([0.1, 0.5, 0.9, np.nan, -np.inf]), min_size=n, max_size=n),
        )
    ),
    st.sampled_from([0.0, 0.5, 0.6, 1.0]),
)
def test_single_class_nms_equals_reference(data, thr):
    boxes, scores = np.array(data[0], np.float32).reshape(-1, 4), np.array(data[1], np.float32)
    keep = nms(boxes, scores, thr)
    assert keep.dtype == np.int64
    # nms() has no score threshold and ranks NaN like -inf: both below every finite score here
    s = np.where(np.isfinite(scores), scores, np.float32(-1))
    p = NMSParams(score_threshold=-2, iou_threshold=thr, max_output_boxes=max(1, len(s)), top_k=0)
    ref = reference_nms(boxes[None], s[None, :, None], p)
    assert keep.tolist() == ref.det_indices[0, : ref.num_dets[0, 0]].tolist()


def test_single_class_nms_exact_boundary():
    assert nms(nested_pair(1, 2), np.array([0.9, 0.8], np.float32), 0.5).tolist() == [0, 1]
    assert nms(nested_pair(1, 2), np.array([0.8, 0.9], np.float32), 0.4).tolist() == [1]


@pytest.mark.parametrize(
    "boxes, scores, thr, match",
    [
        (np.zeros((3, 5)), np.zeros(3), 0.5, "'boxes'"),
        (np.zeros((3, 4), np.int64), np.zeros(3), 0.5, "'boxes'"),
        (np.zeros((3, 4)), np.zeros(2), 0.5, "'scores'"),
        (np.zeros((3, 4)), np.zeros(3), 1.5, "iou_threshold"),
    ],
)
def test_single_class_nms_rejects_bad_inputs(boxes, scores, thr, match):
    with pytest.raises(InputError, match=match):
        nms(boxes, scores, thr)


def test_greedy_limit_stops_early_but_exactly():
    boxes, scores = clustered(600, 1, 11, objects=60)
    order = np.argsort(-scores[0, :, 0], kind="stable")
    cand = boxes[0][order]
    full = host.greedy(cand, np.zeros(len(cand), np.int64), 0.5)
    for limit in (1, 5, 17, len(full), len(full) + 3):
        assert_bits_equal(
            host.greedy(cand, np.zeros(len(cand), np.int64), 0.5, limit), full[:limit]
        )


@pytest.mark.parametrize("steps", [0, 1, 8, 1 << 30])
def test_settle_in_order_and_by_fixed_point_agree_with_the_oracle(steps):
    """A chain of boxes, each overlapping the next above the threshold but not the one after
    (IoU 0.67, then 0.43): greedy keeps every other box, and the fixed point needs one step per
    link. Every switch-over point between the vectorised steps and the in-order pass gives the
    oracle's result; the chain really reaches the in-order pass below 1 << 30 steps."""
    n = 40
    x = np.arange(n, dtype=np.float32) * 2
    chain = np.stack([x, np.zeros(n), x + 10, np.full(n, 10)], 1).astype(np.float32)
    scores = np.linspace(0.9, 0.5, n, dtype=np.float32)
    boxes = np.concatenate([chain, *clustered(300, 1, 5)[0]])[None]
    scores = np.concatenate([scores, clustered(300, 1, 5)[1][0, :, 0] * 0.4])[None, :, None]
    p = NMSParams(score_threshold=0.01, iou_threshold=0.5, max_output_boxes=400, top_k=0)
    calls = []
    real = host._settle_in_order
    with (
        mock.patch.object(host, "FIXED_POINT_STEPS", steps),
        mock.patch.object(host, "_settle_in_order", lambda *a: calls.append(1) or real(*a)),
    ):
        got = batched_nms(boxes, scores, p)
    want = reference_nms(boxes, scores, p)
    assert_same_output(got, want)
    assert set(range(0, n, 2)) <= set(want.det_indices[0, : want.num_dets[0, 0]].tolist())
    assert bool(calls) == (steps < 1 << 30)
