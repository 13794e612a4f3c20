"""EdgeDetNMS from standard ONNX ops (opset >= 13): runs in any ONNX runtime, same results as the oracle.

Data flow (B batch, N anchors, C classes, M = min(top_k, N*C) candidates, K outputs):
  boxes [B,N,4] | [B,N,C,4] --decode/canonicalise--> per-anchor (or per-class) corners
  scores [B,N,C] --sigmoid?/background/NaN--> Reshape [B,N*C] --TopK M--> values, flat index (rank order;
      ONNX TopK breaks ties by lower index, as the spec's rank rule does)
  candidates: boxes gathered [B,M,4]; class = index % C; passes = value > score_threshold
  NonMaxSuppression on [B,C,M] (or [B,1,M]) "rank scores" M - m, so every runtime visits candidates in
      exactly the spec's order whatever its own tie-breaking; max_output_boxes_per_class = K
  selected (b, c, m) --ScatterND--> keep [B,M] --TopK K of keep*(M-m)--> first K kept in rank order
  gather boxes/scores/classes, zero the padding (Where, so inf boxes never turn into NaN)
"""

from __future__ import annotations

import numpy as np

from edgedet.nms.params import BOX_CENTER_SIZE, DEFAULT_BBOX_XFORM_CLIP, NMSParams
from exporters.nms.builder import NodeBuilder

# ORT's NonMaxSuppression scores tensor is [B, C, M]: bound its size (C * M floats per image).
MAX_SCORE_ELEMENTS = 64_000_000
MAX_RANK = 1 << 24  # rank scores M - m are float32: exact integers up to 2**24


def decode(b: NodeBuilder, boxes: str, anchors: str | None, params: NMSParams, per_class: bool) -> str:
    """Spec steps 1-2 in ONNX ops, mirroring edgedet.nms.boxes.decode operation by operation."""
    if anchors is not None:
        a = b.unsqueeze(anchors, [2]) if per_class else anchors
        d = b.op("Div", [boxes, b.const(np.asarray(params.box_scale, np.float32), np.float32)])
        if params.box_coding == BOX_CENTER_SIZE:
            a_xy, a_wh = b.slice_last(a, 0, 2), b.slice_last(a, 2, 4)
            xy = b.op("Add", [b.op("Mul", [b.slice_last(d, 0, 2), a_wh]), a_xy])
            clip = b.const(np.float32(DEFAULT_BBOX_XFORM_CLIP), np.float32)
            wh = b.op("Mul", [b.op("Exp", [b.op("Min", [b.slice_last(d, 2, 4), clip])]), a_wh])
            boxes = b.op("Concat", [xy, wh], axis=-1)
        else:
            boxes = b.op("Add", [a, d])
    if params.box_coding == BOX_CENTER_SIZE:
        xy, half = b.slice_last(boxes, 0, 2), b.op("Mul", [b.slice_last(boxes, 2, 4), b.const(np.float32(0.5), np.float32)])
        boxes = b.op("Concat", [b.op("Sub", [xy, half]), b.op("Add", [xy, half])], axis=-1)
    lo, hi = b.slice_last(boxes, 0, 2), b.slice_last(boxes, 2, 4)
    return b.op("Concat", [b.op("Min", [lo, hi]), b.op("Max", [lo, hi])], axis=-1)


def prepare_scores(b: NodeBuilder, scores: str, params: NMSParams, c: int) -> str:
    """Spec step 3 + background: activated scores with NaN and the background column at -inf.

    The sigmoid is spelled 1 / (1 + exp(-s)) like the reference (ONNX Runtime's Sigmoid kernel
    saturates to exactly 0 below about -17, the formula stays within a few ulp of numpy); NaN is
    tested on the raw score so no activation kernel's NaN handling matters.
    """
    neg_inf = b.const(np.float32(-np.inf), np.float32)
    is_nan = b.op("IsNaN", [scores])
    s = scores
    if params.score_activation:
        one = b.const(np.float32(1), np.float32)
        s = b.op("Div", [one, b.op("Add", [one, b.op("Exp", [b.op("Neg", [scores])])])], hint="sigmoid")
    s = b.op("Where", [is_nan, neg_inf, s])
    if 0 <= params.background_class < c:
        mask = np.zeros(c, bool)
        mask[params.background_class] = True
        s = b.op("Where", [b.const(mask, bool), neg_inf, s])
    return s


def build_nms(b: NodeBuilder, boxes: str, scores: str, params: NMSParams, n: int, c: int, per_class: bool,
              anchors: str | None = None, score_threshold: str | None = None,
              iou_threshold: str | None = None) -> dict[str, str]:
    """Append the NMS nodes; returns tensor names for num_dets, det_boxes, det_scores, det_classes, det_indices.

    ``score_threshold`` / ``iou_threshold`` name float scalar tensors (run-time inputs); None bakes
    the values of ``params`` in as constants.
    """
    m = min(params.top_k or n * c, n * c)
    if (1 if params.class_agnostic else c) * m > MAX_SCORE_ELEMENTS or m > MAX_RANK:
        raise ValueError(f"{m} candidates (top_k {params.top_k}) x {c} classes is too large for the standard-ops "
                         "NMS graph; set a smaller top_k")
    k = params.max_output_boxes
    corners = decode(b, boxes, anchors, params, per_class)
    flat = b.op("Reshape", [prepare_scores(b, scores, params, c), b.const([0, -1])])
    values, index = b.op("TopK", [flat, b.const([m])], outputs=2, axis=-1, largest=1, sorted=1)
    anchor, cls = b.op("Div", [index, b.const(c)]), b.op("Mod", [index, b.const(c)])
    source = b.op("Reshape", [corners, b.const([0, -1, 4])]) if per_class else corners
    cand = b.op("GatherND", [source, b.unsqueeze(index if per_class else anchor, [-1])], batch_dims=1)  # [B,M,4]
    thr = score_threshold or b.const(np.float32(params.score_threshold), np.float32)
    rank = b.const(np.arange(m, 0, -1, dtype=np.float32), np.float32)  # M - m: strictly decreasing
    zero = b.const(np.float32(0), np.float32)
    rank_scores = b.op("Where", [b.op("Greater", [values, thr]), rank, zero])  # [B,M]
    nms_scores = b.unsqueeze(rank_scores, [1])
    if not params.class_agnostic:
        same = b.op("Equal", [b.unsqueeze(cls, [1]), b.const(np.arange(c).reshape(1, c, 1))])
        nms_scores = b.op("Where", [same, nms_scores, zero])  # [B,C,M]
    iou = b.op("Reshape", [iou_threshold, b.const([1])]) if iou_threshold else b.const([params.iou_threshold], np.float32)
    selected = b.op("NonMaxSuppression", [cand, nms_scores, b.const([k]), iou, b.const([0.5], np.float32)])
    return _first_k(b, selected, values, cand, cls, anchor, rank, m, k)


def _first_k(b: NodeBuilder, selected, values, cand, cls, anchor, rank, m: int, k: int) -> dict[str, str]:
    """Selected (b, c, m) triples -> the first K kept candidates in rank order, zero-padded."""
    where = b.op("Gather", [selected, b.const([0, 2])], axis=1)  # [S, 2] (batch, candidate)
    ones = b.op("ConstantOfShape", [b.dim(selected, 0)], value=b.numpy_helper.from_array(np.ones(1, np.float32)))
    zeros = b.op("ConstantOfShape", [b.op("Shape", [values])], value=b.numpy_helper.from_array(np.zeros(1, np.float32)))
    keep = b.op("ScatterND", [zeros, where, ones])  # [B,M]: 1 where candidate m of image b was kept
    kk = min(k, m)
    top, pos = b.op("TopK", [b.op("Mul", [keep, rank]), b.const([kk])], outputs=2, axis=-1, largest=1, sorted=1)
    valid = b.op("Greater", [top, b.const(np.float32(0), np.float32)])  # [B,K']
    zero_f, zero_i = b.const(np.float32(0), np.float32), b.const(np.int32(0), np.int32)
    boxes = b.op("GatherND", [cand, b.unsqueeze(pos, [-1])], batch_dims=1)
    out = {
        "num_dets": b.op("ReduceSum", [b.op("Cast", [valid], to=6), b.const([1])], keepdims=1),
        "det_boxes": b.op("Where", [b.unsqueeze(valid, [-1]), boxes, zero_f]),
        "det_scores": b.op("Where", [valid, b.op("GatherElements", [values, pos], axis=1), zero_f]),
        "det_classes": b.op("Where", [valid, b.op("Cast", [b.op("GatherElements", [cls, pos], axis=1)], to=6), zero_i]),
        "det_indices": b.op("Where", [valid, b.op("Cast", [b.op("GatherElements", [anchor, pos], axis=1)], to=6),
                                      b.const(np.int32(-1), np.int32)]),
    }
    if k > m:  # fewer candidates than outputs: pad the K axis
        for name in ("det_boxes", "det_scores", "det_classes", "det_indices"):
            rank_ = 3 if name == "det_boxes" else 2
            pads = [0] * rank_ + [0, k - m] + [0] * (rank_ - 2)
            fill = b.const(np.int32(-1 if name == "det_indices" else 0), np.int32) if name in ("det_classes", "det_indices") \
                else zero_f
            out[name] = b.op("Pad", [out[name], b.const(pads), fill])
    return out
