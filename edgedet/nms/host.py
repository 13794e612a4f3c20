"""Vectorised numpy EdgeDetNMS: the runtime's path when the graph has no NMS.

Same results as edgedet.nms.reference (tests/nms). Per-class greedy NMS runs for all
classes at once: each round keeps the best remaining candidate of every class and drops
the same-class candidates that overlap it, so the number of Python-level rounds is the
largest per-class keep count, not the total (benchmarks/nms_host.py measures it against
torchvision.ops.batched_nms).
"""

from __future__ import annotations

import numpy as np

from edgedet.nms.boxes import NMSOutput, activate, decode, empty_output, iou, validate
from edgedet.nms.params import NMSParams


def batched_nms(boxes, scores, params: NMSParams, anchors=None) -> NMSOutput:
    """boxes [B, N, 4] or [B, N, C, 4], scores [B, N, C], anchors [1|B, N, 4] -> NMSOutput (K = max_output_boxes)."""
    boxes, scores, anchors = validate(boxes, scores, anchors)
    if anchors is None and boxes.ndim == 3:
        boxes = decode(boxes, None, params)  # cheap at [B, N, 4]; per-class / anchored decode after selection
    if params.score_activation:  # NaN needs no replacement here: NaN > threshold is False
        scores = activate(scores, params)
    out = empty_output(scores.shape[0], params.max_output_boxes)
    for b in range(scores.shape[0]):
        rank_n, rank_c, rank_s = candidates(scores[b], params)
        cand_boxes = _boxes_of(boxes[b], anchors[min(b, len(anchors) - 1)] if anchors is not None else None,
                               rank_n, rank_c, params)
        keep = greedy(cand_boxes, rank_c, params, limit=params.max_output_boxes)[: params.max_output_boxes]
        k = len(keep)
        out.num_dets[b, 0] = k
        out.det_boxes[b, :k] = cand_boxes[keep]
        out.det_scores[b, :k] = rank_s[keep]
        out.det_classes[b, :k] = rank_c[keep]
        out.det_indices[b, :k] = rank_n[keep]
    return out


def candidates(scores: np.ndarray, params: NMSParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 4-5 for one image: (anchor, class, score) of candidates in rank order, cut to top_k."""
    if 0 <= params.background_class < scores.shape[1]:
        scores = scores.copy()
        scores[:, params.background_class] = -np.inf
    flat = scores.ravel()
    idx = np.flatnonzero(flat > np.float32(params.score_threshold))
    if params.top_k and len(idx) > params.top_k:
        # argpartition first: sorting every candidate at threshold 0.001 would dominate
        part = np.argpartition(-flat[idx], params.top_k - 1)[: params.top_k]
        kth = flat[idx[part]].min()
        idx = idx[flat[idx] >= kth]  # keep every tie of the k-th score, cut after the exact sort
    order = np.argsort(-flat[idx], kind="stable")  # stable: ties stay in flat-index (anchor, class) order
    idx = idx[order][: params.top_k or None]
    n, c = np.divmod(idx, scores.shape[1])
    return n, c, flat[idx]


def _boxes_of(boxes: np.ndarray, anchors, n: np.ndarray, c: np.ndarray, params: NMSParams) -> np.ndarray:
    """Decoded canonical boxes of the candidates [M, 4]."""
    raw = boxes[n, c] if boxes.ndim == 3 else boxes[n]
    if boxes.ndim == 2 and anchors is None:
        return raw  # already decoded for the whole image
    return decode(raw[None], anchors[n][None] if anchors is not None else None, params)[0]


# Candidates per group settled per round: starts at 1 (typical clusters die in one round) and doubles
# up to this cap when groups keep many boxes (benchmarks/nms_host.py: 16 beat 4, 8, 32 and 64).
HEADS_PER_ROUND = 16


def greedy(boxes: np.ndarray, classes: np.ndarray, params: NMSParams, limit: int | None = None) -> np.ndarray:
    """Step 6: indices (into rank order) of the kept candidates, in rank order.

    Candidates are regrouped by class once (stable: rank order holds inside a group). Each round
    takes the first T alive candidates of every group, settles the greedy among them exactly
    (T small steps, vectorised over groups), then drops every other alive candidate that overlaps
    a head kept in this round. With ``limit``, stops once the first ``limit`` kept are final.
    """
    m = len(boxes)
    if m == 0:
        return np.zeros(0, np.int64)
    groups = np.zeros(m, np.int64) if params.class_agnostic else classes.astype(np.int64)
    by_group = np.argsort(groups, kind="stable")
    grouped = _Grouped(boxes[by_group], groups[by_group], np.float32(params.iou_threshold))
    alive = np.arange(m)
    kept, n_kept, t = [], 0, 1
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        while alive.size:
            heads, alive = grouped.round(alive, t)
            t = min(2 * t, HEADS_PER_ROUND)
            kept.append(by_group[heads])
            n_kept += heads.size
            if limit is not None and n_kept >= limit and alive.size and _settled(kept, by_group[alive].min(), limit):
                break
    return np.sort(np.concatenate(kept))


class _Grouped:
    """Candidates in grouped order with per-coordinate arrays, for the greedy rounds."""

    def __init__(self, boxes: np.ndarray, groups: np.ndarray, thr: np.float32) -> None:
        self.boxes = np.ascontiguousarray(boxes, np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            self.area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        self.groups, self.thr = groups, thr

    def round(self, alive: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Settle the first ``t`` alive of every group; return (kept heads, still alive)."""
        new_seg = np.empty(alive.size, bool)
        new_seg[0] = True
        np.not_equal(self.groups[alive[1:]], self.groups[alive[:-1]], out=new_seg[1:])
        seg = np.cumsum(new_seg) - 1
        pos = np.arange(alive.size) - np.flatnonzero(new_seg)[seg]
        t = min(t, int(pos.max()) + 1)
        is_head = pos < t
        table = np.full((seg[-1] + 1, t), -1, np.int64)  # [groups alive, t] head indices, -1 = none
        table[seg[is_head], pos[is_head]] = alive[is_head]
        keep = self._settle(table)
        rest = alive[~is_head]
        if rest.size:
            cols = table[seg[~is_head]]  # the heads of each rest candidate's group
            hit = self._overlaps(np.repeat(rest, t), np.maximum(cols, 0).ravel()).reshape(-1, t)
            rest = rest[~(hit & keep[seg[~is_head]]).any(1)]
        return np.sort(table[keep]), rest

    def _settle(self, table: np.ndarray) -> np.ndarray:
        """Greedy among each row's heads, in order: keep[g, i] unless a kept earlier head overlaps it."""
        g, t = table.shape
        valid = table >= 0
        safe = np.maximum(table, 0)
        over = self._overlaps(np.repeat(safe, t, axis=1).ravel(), np.tile(safe, (1, t)).ravel()).reshape(g, t, t)
        keep = valid.copy()
        for i in range(1, t):
            keep[:, i] &= ~(over[:, i, :i] & keep[:, :i]).any(1)
        return keep

    def _overlaps(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """IoU(a_i, b_i) > thr, bit-identical to edgedet.nms.boxes.iou (a union <= 0 gives NaN or
        x/0 here, which compares False exactly like the spec's IoU of 0)."""
        ba, bb = self.boxes[a], self.boxes[b]
        wh = np.minimum(ba[:, 2:], bb[:, 2:])
        wh -= np.maximum(ba[:, :2], bb[:, :2])
        np.maximum(wh, 0, out=wh)
        inter = wh[:, 0] * wh[:, 1]
        union = self.area[a] + self.area[b]
        union -= inter
        return (inter / union) > self.thr


def _settled(kept: list, first_alive_rank: int, limit: int) -> bool:
    """True when ``limit`` candidates ranked above every alive one are already kept."""
    return sum(int((k < first_alive_rank).sum()) for k in kept) >= limit


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Single-class NMS like torchvision.ops.nms: boxes [N, 4] xyxy, scores [N] -> kept indices by score."""
    boxes = np.asarray(boxes, np.float32)
    scores = np.where(np.isnan(scores), -np.inf, np.asarray(scores, np.float32))
    order = np.argsort(-scores, kind="stable")
    params = NMSParams(iou_threshold=iou_threshold, class_agnostic=True)
    canon = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    return order[greedy(canon[order], np.zeros(len(order), np.int64), params)]
