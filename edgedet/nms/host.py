"""Vectorised numpy EdgeDetNMS: the runtime's path when the graph has no NMS (docs/nms.md).

Same results as :mod:`edgedet.nms.reference`, bit for bit (tests/nms). The greedy step works on
rounds instead of one Python step per candidate: each round takes a prefix of the still-undecided
candidates (in rank order), settles the greedy among them exactly with a fixed-point iteration on
their same-class overlap graph, then removes every later candidate that a newly kept box
suppresses. IoU is only ever computed for same-class pairs, listed sparsely, so 80 classes cost no
more than one. benchmarks/nms_host.py measures it against torchvision.ops.batched_nms.
"""

from __future__ import annotations

import numpy as np

from edgedet.errors import InputError
from edgedet.nms.boxes import NMSOutput, activate, canonical, decode, empty_output, validate
from edgedet.nms.params import NMSParams

# Same-class pairs settled per round; bounds a round's memory (~40 bytes a pair). Rounds with fewer
# pairs double the next prefix. Sweeping benchmarks/nms_host.py cases: 2**14 and 2**16 within noise,
# prefixes 64..512 -> 256 best on the 238- and 1000-candidate sets (one or two rounds).
PAIR_BUDGET = 1 << 16
FIRST_PREFIX = 256
HIT_CHUNK = 1 << 20  # pairs per slice when newly kept boxes suppress the undecided rest
TWO_SIDED_MIN = 64  # kept boxes from which the second x-range search pays for itself
# Vectorised fixed-point steps in _settle before it finishes the round in rank order instead: a step
# costs ~10 us, the in-order pass ~0.5 us per candidate + ~0.1 us per edge. Clusters of a trained
# model settle in about three steps; a random-weight YOLOv8n's 1000 heavily overlapping candidates
# took ~57 steps per round (0.61 ms against 0.18 ms in order, 256 candidates, 1119 edges).
FIXED_POINT_STEPS = 8


def batched_nms(boxes, scores, params: NMSParams, anchors=None) -> NMSOutput:
    """Per-image NMS with the contract's padded outputs.

    boxes: [B, N, 4] or per-class [B, N, C, 4], coded as ``params.box_coding`` (anchor deltas when
    ``anchors`` [1|B, N, 4] is given); scores: [B, N, C]. float16/32/64, computed in float32.
    Returns NMSOutput with K = params.max_output_boxes; det_boxes are canonical (x1, y1, x2, y2).
    """
    boxes, scores, anchors = validate(boxes, scores, anchors)
    if params.score_activation:  # without it NaN needs no replacement: NaN > threshold is False
        scores = activate(scores, params)
    k = params.max_output_boxes
    out = empty_output(scores.shape[0], k)
    for b in range(scores.shape[0]):
        rank_n, rank_c, rank_s = candidates(scores[b], params)
        image_anchors = anchors[min(b, len(anchors) - 1)] if anchors is not None else None
        cand = _boxes_of(boxes[b], image_anchors, rank_n, rank_c, params)
        groups = np.zeros_like(rank_c) if params.class_agnostic else rank_c
        keep = greedy(cand, groups, params.iou_threshold, limit=k)
        n = len(keep)
        out.num_dets[b, 0] = n
        out.det_boxes[b, :n] = cand[keep]
        out.det_scores[b, :n] = rank_s[keep]
        out.det_classes[b, :n] = rank_c[keep]
        out.det_indices[b, :n] = rank_n[keep]
    return out


def candidates(scores: np.ndarray, params: NMSParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spec steps 4-5 for one image: scores [N, C] (activated; NaN is never selected) ->
    (anchor index, class, score) of the candidates in rank order, cut to top_k."""
    flat = scores.ravel()
    threshold = np.float32(params.score_threshold)
    mask = None
    if params.top_k and flat.size > PRESELECT_FACTOR * params.top_k:
        t = _sampled_threshold(flat, params.top_k)
        if t > threshold:
            mask = _mask(flat, t, scores.shape[1], params.background_class)
            if np.count_nonzero(mask) < params.top_k:  # the top_k would not all beat t: no shortcut
                mask = None
    if mask is None:
        mask = _mask(flat, threshold, scores.shape[1], params.background_class)
    idx = np.flatnonzero(mask)
    values = flat[idx]
    if params.top_k and len(idx) > params.top_k:
        # select before sorting: a full sort of every candidate at threshold 0.001 would dominate
        kth = np.partition(values, len(values) - params.top_k)[len(values) - params.top_k]
        ties = values >= kth  # every tie of the k-th score survives; the exact sort below cuts them
        idx, values = idx[ties], values[ties]
    # stable: ties keep flat-index order
    order = np.argsort(-values, kind="stable")[: params.top_k or None]
    anchor, cls = np.divmod(idx[order], scores.shape[1])
    return anchor, cls, values[order]


def _mask(flat: np.ndarray, threshold: np.float32, n_classes: int, background: int) -> np.ndarray:
    """Candidates: score > threshold (strict; NaN fails) and not the background class."""
    mask = flat > threshold
    if 0 <= background < n_classes:
        mask.reshape(-1, n_classes)[:, background] = False
    return mask


# Score arrays longer than this many times top_k try a sampled pre-threshold first (25200 x 80 at
# threshold 0.001: ~1.2M candidates would otherwise be gathered and partitioned to keep 4096).
PRESELECT_FACTOR = 64


def _sampled_threshold(flat: np.ndarray, top_k: int) -> np.float32:
    """A score that about 2 * top_k scores exceed, estimated from a strided sample. The caller
    uses it only after counting at least top_k candidates above it, so the top_k stay exact."""
    step = max(1, flat.size // (16 * top_k))
    sample = flat[::step]
    keep = max(1, 2 * top_k // step)
    if keep >= sample.size:
        return np.float32(-np.inf)
    return np.partition(sample, sample.size - keep)[sample.size - keep]


def _boxes_of(
    boxes: np.ndarray, anchors, n: np.ndarray, c: np.ndarray, params: NMSParams
) -> np.ndarray:
    """Decoded canonical boxes [M, 4] of the candidates (anchor n, class c); decoding only the
    candidates gives the same bits as decoding everything (elementwise) at a fraction of the cost.
    """
    raw = boxes[n, c] if boxes.ndim == 3 else boxes[n]
    return decode(raw, anchors[n] if anchors is not None else None, params)


def nms(boxes, scores, iou_threshold: float) -> np.ndarray:
    """Single-class NMS like torchvision.ops.nms, with the spec's IoU and tie rules.

    boxes: [N, 4] (x1, y1, x2, y2), canonicalised first; scores: [N] (NaN ranks last, as -inf).
    Returns int64 indices of the kept boxes, by decreasing score (ties: lower index first).
    """
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or boxes.dtype.kind != "f":
        raise InputError(
            f"nms: 'boxes' must be a float [N, 4] array, got {boxes.dtype} {boxes.shape}"
        )
    if scores.shape != boxes.shape[:1] or scores.dtype.kind != "f":
        raise InputError(
            f"nms: 'scores' must be a float [{len(boxes)}] array, got {scores.dtype} {scores.shape}"
        )
    if not 0.0 <= iou_threshold <= 1.0:
        raise InputError(f"nms: iou_threshold must be in [0, 1], got {iou_threshold}")
    scores = scores.astype(np.float32)
    order = np.argsort(-np.where(np.isnan(scores), np.float32(-np.inf), scores), kind="stable")
    cand = canonical(boxes.astype(np.float32))[order]
    return order[greedy(cand, np.zeros(len(order), np.int64), iou_threshold)]


def greedy(
    boxes: np.ndarray, groups: np.ndarray, iou_threshold: float, limit: int | None = None
) -> np.ndarray:
    """Spec step 6: positions of the kept candidates, in rank order (only the first ``limit``).

    boxes: [M, 4] canonical (x1, y1, x2, y2) in rank order; groups: [M] int, the class of each
    candidate (all equal when class-agnostic). A candidate is kept iff its IoU with every kept
    earlier candidate of its group is <= iou_threshold.
    """
    cand = _Candidates(boxes, groups, iou_threshold)
    pending = np.arange(len(boxes))  # undecided, already checked against every kept box
    kept: list[np.ndarray] = []
    n_kept, length = 0, FIRST_PREFIX
    # spec: NaN IoU never suppresses
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        while pending.size:
            head, length = _prefix(pending, cand.groups, length)
            new = head[_settle(cand, head)]
            kept.append(new)
            n_kept += new.size
            pending = pending[head.size :]
            if limit is not None and n_kept >= limit:
                break  # kept boxes are final and come in rank order: the first `limit` are known
            if new.size and pending.size:
                pending = pending[~_hit(cand, pending, new)]
    keep = kept[0] if len(kept) == 1 else np.concatenate(kept) if kept else np.zeros(0, np.int64)
    return keep[:limit]


class _Candidates:
    """Rank-ordered candidates laid out for pair tests.

    ``packed`` holds (x1, y1, -x2, -y2) as one 16-byte item per box, so one gather fetches a box
    and one np.maximum over both sides of a pair yields (max x1, max y1, -min x2, -min y2).
    ``key1`` / ``key2`` order candidates by (group, x1) / (group, x2) as plain int64s.
    """

    def __init__(self, boxes: np.ndarray, groups: np.ndarray, iou_threshold: float) -> None:
        b = np.array(boxes, np.float32).reshape(-1, 4)
        self.groups = np.asarray(groups, np.int64)
        self.thr = np.float32(iou_threshold)
        with np.errstate(invalid="ignore", over="ignore"):
            self.area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        self.key1, self.key2 = _sort_key(self.groups, b[:, 0]), _sort_key(self.groups, b[:, 2])
        b[:, 2:] *= np.float32(-1)
        self.packed = b.view(np.complex128).ravel()

    def overlaps(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return overlaps(self.packed, self.area, a, b, self.thr)


def overlaps(
    packed: np.ndarray, area: np.ndarray, a: np.ndarray, b: np.ndarray, thr: np.float32
) -> np.ndarray:
    """IoU(a_k, b_k) > thr for index arrays a, b into ``packed`` / ``area`` (see _Candidates).

    Decisions are bit-identical to edgedet.nms.boxes.iou: -(iw), -(ih) come out exactly (negation is
    exact), and where the spec's IoU is 0 for union <= 0 this divides 0 by 0, and NaN > thr is False
    all the same.
    """
    m = np.maximum(packed[a].view(np.float32), packed[b].view(np.float32))
    m = m.reshape(-1, 4).T.copy()  # rows: max x1, max y1, -min x2, -min y2
    inter = np.add(m[0], m[2], out=m[0])  # -iw
    np.minimum(inter, np.float32(0), out=inter)
    ih = np.add(m[1], m[3], out=m[1])  # -ih
    np.minimum(ih, np.float32(0), out=ih)
    inter *= ih  # (-iw)(-ih) == iw * ih exactly
    union = area[a] + area[b]
    union -= inter
    inter /= union
    return inter > thr


def _sort_key(groups: np.ndarray, x: np.ndarray) -> np.ndarray:
    """int64 keys ordered like (group, x): group * 2**32 plus the float32 bits of x as an int32 of
    the same order (negative floats get their 31 low bits flipped). -0.0 ranks just below +0.0 and
    NaN beyond +-inf: key ranges are then at worst a little wide, and the extra pairs are tested
    exactly (a box with a NaN coordinate never suppresses anything)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.int32)
    ordered = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
    return (np.asarray(groups, np.int64) << 32) + ordered


def _prefix(pending: np.ndarray, groups: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """The next candidates to settle: the longest prefix (halving from ``length``) whose same-group
    pairs fit PAIR_BUDGET; also returns the prefix length to try next round."""
    while True:
        head = pending[:length]
        n = len(head)
        if n * (n - 1) <= 2 * PAIR_BUDGET:
            return head, max(length, 2 * n)
        counts = np.bincount(groups[head])
        pairs = int(counts @ (counts - 1)) // 2
        if pairs <= PAIR_BUDGET or length <= 16:
            return head, length * 2 if 4 * pairs <= PAIR_BUDGET else length
        length //= 2


def _settle(cand: _Candidates, idx: np.ndarray) -> np.ndarray:
    """Exact greedy among candidates ``idx`` (rank order): keep mask over idx.

    keep[i] = not any(edge j->i and keep[j]), edges = same-group overlaps to an earlier candidate.
    Iterating that map from all-True fixes at least one more position per step (position 0 never
    changes, then 1, ...) and its only fixed point is the greedy result, so stopping when it no
    longer changes is exact; clusters settle in about three steps. Long chains of overlaps take
    one step per link: after FIXED_POINT_STEPS the round is decided in rank order instead.
    """
    n = len(idx)
    key = cand.key1[idx]
    order = np.argsort(key, kind="stable")  # by (group, x1)
    src = idx[order]
    # partners: later by x1, starting left of my x2
    stop = np.searchsorted(key[order], cand.key2[src], "left")
    a, b = _later_pairs(stop)
    over = overlaps(cand.packed[src], cand.area[src], a, b, cand.thr)
    ea, eb = order[a[over]], order[b[over]]
    ei, ej = np.minimum(ea, eb), np.maximum(ea, eb)  # edge: ei ranks before ej
    keep = np.ones(n, bool)
    for _ in range(min(n, FIXED_POINT_STEPS)):
        sup = np.zeros(n, bool)
        sup[ej[keep[ei]]] = True
        if not np.count_nonzero(sup == keep):  # keep == ~sup: the fixed point
            return keep
        keep = ~sup
    return _settle_in_order(n, ei, ej)


def _settle_in_order(n: int, ei: np.ndarray, ej: np.ndarray) -> np.ndarray:
    """The same keep mask as _settle, one candidate at a time in rank order: candidate j is kept iff
    none of its earlier neighbours (edges ei -> ej, ei < ej) was kept."""
    order = np.argsort(ej, kind="stable")
    earlier = ei[order].tolist()
    bounds = np.searchsorted(ej[order], np.arange(n + 1)).tolist()
    keep = [True] * n
    for j in range(n):
        for i in earlier[bounds[j] : bounds[j + 1]]:
            if keep[i]:
                keep[j] = False
                break
    return np.array(keep, bool)


def _later_pairs(stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (a, b) with a < b < stop[a], as two flat index arrays."""
    count = stop - np.arange(1, len(stop) + 1)
    np.maximum(count, 0, out=count)
    a = np.repeat(np.arange(len(stop)), count)
    b = np.arange(len(a)) + np.repeat(np.arange(1, len(stop) + 1) - np.cumsum(count) + count, count)
    return a, b


def _hit(cand: _Candidates, pending: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Mask over ``pending``: IoU > thr with a newly kept box ``new`` of its own group.

    A pair can only overlap if the kept box starts left of the candidate's right edge (range A of
    the kept boxes sorted by (group, x1)) and ends right of its left edge (range B, sorted by
    (group, x2)); other pairs have iw exactly 0, so IoU 0. Each candidate is tried against range A
    or, when many boxes were kept, against the shorter of A and B.
    """
    by_x1 = new[np.argsort(cand.key1[new], kind="stable")]
    k1 = cand.key1[by_x1]
    group = cand.groups[pending] << 32
    start = np.searchsorted(k1, group - (1 << 31), "left")  # the candidate's group among the kept
    count = np.searchsorted(k1, cand.key2[pending], "left") - start
    source = by_x1
    if len(new) > TWO_SIDED_MIN:
        by_x2 = new[np.argsort(cand.key2[new], kind="stable")]
        k2 = cand.key2[by_x2]
        start_b = np.searchsorted(k2, cand.key1[pending], "right")
        count_b = np.searchsorted(k2, group + (1 << 31), "left") - start_b
        use_b = count_b < count
        count = np.where(use_b, count_b, count)
        start = np.where(use_b, start_b + len(new), start)  # into concatenate((by_x1, by_x2))
        source = np.concatenate((by_x1, by_x2))
    hit = np.zeros(len(pending), bool)
    for lo, hi in _slices(count, HIT_CHUNK):
        first, offset = _ranges(count[lo:hi])
        first += lo
        over = cand.overlaps(pending[first], source[start[first] + offset])
        hit[first[over]] = True
    return hit


def _slices(count: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Split owners into consecutive slices of about ``size`` expanded pairs (bounds memory)."""
    total = int(count.sum())
    if total <= size:
        return [(0, len(count))]
    cuts = np.searchsorted(np.cumsum(count), np.arange(size, total, size)).tolist()
    bounds = sorted({0, *cuts, len(count)})
    return list(zip(bounds[:-1], bounds[1:]))


def _ranges(count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand counts into pairs: (owner, 0..count[owner]-1) for every owner, as two flat arrays."""
    owner = np.repeat(np.arange(len(count)), count)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    return owner, offset
