"""EdgeDetNMS from standard ONNX ops (opset >= 13): runs in any ONNX runtime, same results as the
oracle.

Data flow (B batch, N anchors, C classes, M = min(top_k, N*C) candidates, K outputs):
  boxes [B,N,4] | [B,N,C,4] --decode/canonicalise--> per-anchor (or per-class) corners
  scores [B,N,C] --sigmoid?/background/NaN--> Reshape [B,N*C] --TopK M--> values, flat index (rank
      order; ONNX TopK breaks ties by lower index, as the spec's rank rule does)
  candidates: boxes gathered [B,M,4]; class = index % C; passes = value > score_threshold
  NonMaxSuppression on [B,C,M] (or [B,1,M]) "rank scores" M - m, so every runtime visits candidates
      in exactly the spec's order whatever its own tie-breaking; max_output_boxes_per_class = K
  selected (b, c, m) --ScatterND--> keep [B,M] --TopK K of keep*(M-m)--> first K kept in rank order
  gather boxes/scores/classes, zero the padding (Where, so inf boxes never turn into NaN)

Two ways to build the same computation, chosen by :class:`Knobs`:
  static   the parameters are Python values: structure decided here, shapes static (``graph``).
  dynamic  the parameters are tensors bound to the EdgeDetNMS node's attributes: the body of the
           model-local function (``edgedet``), one body for every node of the model whatever its
           parameters; shapes (N, C, per-class boxes) and M are computed at run time, and choices
           such as the activation are Where-selected (both sides computed, the chosen one
           bit-exact).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from edgedet.nms.params import BOX_CENTER_SIZE, DEFAULT_BBOX_XFORM_CLIP, NMSParams
from edgedet.onnx.builder import NodeBuilder

# ORT's NonMaxSuppression scores tensor is [B, C, M]: bound its size (C * M floats per image).
MAX_SCORE_ELEMENTS = 64_000_000
MAX_RANK = 1 << 24  # rank scores M - m are float32: exact integers up to 2**24


@dataclass(frozen=True)
class Knobs:
    """The NMS parameters as the builder reads them: Python values (static) or tensor names
    (dynamic; int64 / float32 scalars, ``box_scale`` float32 [4])."""

    score_threshold: float | str
    iou_threshold: float | str
    max_output_boxes: int | str
    top_k: int | str
    background_class: int | str
    score_activation: bool | str
    class_agnostic: bool | str
    box_coding: int | str
    box_scale: tuple | str

    @classmethod
    def static(cls, params: NMSParams) -> Knobs:
        return cls(**{f.name: getattr(params, f.name) for f in fields(cls)})

    @property
    def dynamic(self) -> bool:
        return isinstance(self.max_output_boxes, str)


def _is(b: NodeBuilder, flag, value: int = 1):
    """A choice: Python bool (static) or a bool tensor ``flag == value`` (dynamic)."""
    if isinstance(flag, str):
        return b.op("Equal", [flag, b.const(np.int64(value))])
    return int(flag) == value


def _select(b: NodeBuilder, cond, if_true, if_false) -> str:
    """``if_true()`` or ``if_false()``: decided here when ``cond`` is a bool, else both built and
    Where-selected."""
    if isinstance(cond, str):
        return b.op("Where", [cond, if_true(), if_false()])
    return if_true() if cond else if_false()


def decode(b: NodeBuilder, boxes: str, anchors: str | None, k: Knobs) -> str:
    """Spec steps 1-2 in ONNX ops, mirroring edgedet.nms.boxes.decode operation by operation.
    ``anchors`` must already broadcast against ``boxes``."""
    centre_size = _is(b, k.box_coding, BOX_CENTER_SIZE)
    if anchors is not None:
        scale = (
            k.box_scale if k.dynamic else b.const(np.asarray(k.box_scale, np.float32), np.float32)
        )
        d = b.op("Div", [boxes, scale])

        def centre_size_decode():
            a_xy, a_wh = b.slice_last(anchors, 0, 2), b.slice_last(anchors, 2, 4)
            xy = b.op("Add", [b.op("Mul", [b.slice_last(d, 0, 2), a_wh]), a_xy])
            clip = b.const(np.float32(DEFAULT_BBOX_XFORM_CLIP), np.float32)
            wh = b.op("Mul", [b.op("Exp", [b.op("Min", [b.slice_last(d, 2, 4), clip])]), a_wh])
            return b.op("Concat", [xy, wh], axis=-1)

        boxes = _select(b, centre_size, centre_size_decode, lambda: b.op("Add", [anchors, d]))

    def to_corners():
        xy, half = (
            b.slice_last(boxes, 0, 2),
            b.op("Mul", [b.slice_last(boxes, 2, 4), b.const(np.float32(0.5), np.float32)]),
        )
        return b.op("Concat", [b.op("Sub", [xy, half]), b.op("Add", [xy, half])], axis=-1)

    boxes = _select(b, centre_size, to_corners, lambda: boxes)
    lo, hi = b.slice_last(boxes, 0, 2), b.slice_last(boxes, 2, 4)
    return b.op("Concat", [b.op("Min", [lo, hi]), b.op("Max", [lo, hi])], axis=-1)


def prepare_scores(b: NodeBuilder, scores: str, k: Knobs, c) -> str:
    """Spec step 3 + background: activated scores with NaN and the background column at -inf.

    The sigmoid is spelled 1 / (1 + exp(-s)) like the reference (ONNX Runtime's Sigmoid kernel
    saturates to exactly 0 below about -17, the formula stays within a few ulp of numpy); NaN is
    tested on the raw score so no activation kernel's NaN handling matters. ``c``: the class
    count (int) or, dynamic, an int64 scalar tensor.
    """
    neg_inf = b.const(np.float32(-np.inf), np.float32)
    is_nan = b.op("IsNaN", [scores])

    def sigmoid():
        one = b.const(np.float32(1), np.float32)
        return b.op(
            "Div", [one, b.op("Add", [one, b.op("Exp", [b.op("Neg", [scores])])])], hint="sigmoid"
        )

    s = b.op(
        "Where", [is_nan, neg_inf, _select(b, _is(b, k.score_activation), sigmoid, lambda: scores)]
    )
    if k.dynamic:  # a background class outside [0, C) matches no column
        column = b.op("Range", [b.const(np.int64(0)), c, b.const(np.int64(1))])
        return b.op("Where", [b.op("Equal", [column, k.background_class]), neg_inf, s])
    if 0 <= k.background_class < c:
        mask = np.zeros(c, bool)
        mask[k.background_class] = True
        s = b.op("Where", [b.const(mask, bool), neg_inf, s])
    return s


def check_size(n: int, c: int, top_k: int, class_agnostic: bool) -> int:
    """M, the candidates entering NMS; ValueError when the standard-op form cannot hold them."""
    m = min(top_k or n * c, n * c)
    if (1 if class_agnostic else c) * m > MAX_SCORE_ELEMENTS or m > MAX_RANK:
        raise ValueError(
            f"{m} candidates (top_k {top_k}) x {c} classes is too large for the standard-ops "
            "NMS graph; set a smaller top_k"
        )
    return m


def build_nms(
    b: NodeBuilder,
    boxes: str,
    scores: str,
    params: NMSParams | Knobs,
    n: int | None = None,
    c: int | None = None,
    per_class: bool | None = None,
    anchors: str | None = None,
    score_threshold: str | None = None,
    iou_threshold: str | None = None,
    indices: bool = True,
) -> dict[str, str]:
    """Append the NMS nodes; returns tensor names for num_dets, det_boxes, det_scores, det_classes
    (and det_indices when ``indices``).

    Static (``params`` an NMSParams or static Knobs): ``n``, ``c``, ``per_class`` describe the
    inputs. Dynamic Knobs: they are read from the tensors at run time (pass None). ``anchors``
    [1|B, N, 4]. ``score_threshold`` / ``iou_threshold`` name float scalar (or [1]) tensors fed at
    run time; None uses the knobs.
    """
    k = params if isinstance(params, Knobs) else Knobs.static(params)
    if k.dynamic:
        return _build_dynamic(b, boxes, scores, k, anchors, score_threshold, iou_threshold, indices)
    m = check_size(n, c, k.top_k, k.class_agnostic)
    if anchors is not None and per_class:
        anchors = b.unsqueeze(anchors, [2])
    corners = decode(b, boxes, anchors, k)
    flat = b.op("Reshape", [prepare_scores(b, scores, k, c), b.const([0, -1])])
    values, index = b.op("TopK", [flat, b.const([m])], outputs=2, axis=-1, largest=1, sorted=1)
    anchor, cls = b.op("Div", [index, b.const(c)]), b.op("Mod", [index, b.const(c)])
    source = b.op("Reshape", [corners, b.const([0, -1, 4])]) if per_class else corners
    # [B,M,4]
    cand = b.op(
        "GatherND", [source, b.unsqueeze(index if per_class else anchor, [-1])], batch_dims=1
    )
    thr = score_threshold or b.const(np.float32(k.score_threshold), np.float32)
    rank = b.const(np.arange(m, 0, -1, dtype=np.float32), np.float32)  # M - m: strictly decreasing
    zero = b.const(np.float32(0), np.float32)
    rank_scores = b.op("Where", [b.op("Greater", [values, thr]), rank, zero])  # [B,M]
    nms_scores = b.unsqueeze(rank_scores, [1])
    if not k.class_agnostic:
        same = b.op("Equal", [b.unsqueeze(cls, [1]), b.const(np.arange(c).reshape(1, c, 1))])
        nms_scores = b.op("Where", [same, nms_scores, zero])  # [B,C,M]
    iou = (
        b.op("Reshape", [iou_threshold, b.const([1])])
        if iou_threshold
        else b.const([k.iou_threshold], np.float32)
    )
    selected = b.op(
        "NonMaxSuppression",
        [cand, nms_scores, b.const([k.max_output_boxes]), iou, b.const([0.5], np.float32)],
    )
    return _first_k(b, selected, values, cand, cls, anchor, rank, m, k.max_output_boxes, indices)


def _build_dynamic(
    b: NodeBuilder, boxes, scores, k: Knobs, anchors, score_threshold, iou_threshold, indices
):
    """The function-body form: every size and choice from the inputs' shapes and the knob
    tensors."""
    scalar = lambda x: b.op("Reshape", [x, b.const(np.zeros(0, np.int64))])  # noqa: E731 - [1] -> []
    c, n = scalar(b.dim(scores, 2)), scalar(b.dim(scores, 1))
    boxes4 = b.op("Reshape", [boxes, b.const([0, 0, -1, 4])])  # [B,N,Cb,4], Cb = 1 (shared) or C
    corners = decode(b, boxes4, b.unsqueeze(anchors, [2]) if anchors is not None else None, k)
    flat = b.op("Reshape", [prepare_scores(b, scores, k, c), b.const([0, -1])])
    nc = b.op("Mul", [n, c])
    limit = b.op("Where", [b.op("Greater", [k.top_k, b.const(np.int64(0))]), k.top_k, nc])
    m = b.op("Min", [limit, nc])  # int64 scalar
    values, index = b.op(
        "TopK", [flat, b.op("Reshape", [m, b.const([1])])], outputs=2, axis=-1, largest=1, sorted=1
    )
    anchor, cls = b.op("Div", [index, c]), b.op("Mod", [index, c])
    cb = scalar(b.dim(boxes4, 2))
    row = b.op(
        "Add",
        [b.op("Mul", [anchor, cb]), b.op("Min", [cls, b.op("Sub", [cb, b.const(np.int64(1))])])],
    )
    source = b.op("Reshape", [corners, b.const([0, -1, 4])])
    cand = b.op("GatherND", [source, b.unsqueeze(row, [-1])], batch_dims=1)  # [B,M,4]
    thr = score_threshold or k.score_threshold
    # M..1 float
    rank = b.op("Cast", [b.op("Range", [m, b.const(np.int64(0)), b.const(np.int64(-1))])], to=1)
    zero = b.const(np.float32(0), np.float32)
    # [B,1,M]
    rank_scores = b.unsqueeze(b.op("Where", [b.op("Greater", [values, thr]), rank, zero]), [1])
    agnostic = _is(b, k.class_agnostic)
    nms_cls = b.op("Where", [agnostic, b.const(np.int64(0)), cls])  # one class when agnostic
    classes = b.op(
        "Range",
        [
            b.const(np.int64(0)),
            b.op("Where", [agnostic, b.const(np.int64(1)), c]),
            b.const(np.int64(1)),
        ],
    )
    same = b.op(
        "Equal", [b.unsqueeze(nms_cls, [1]), b.op("Reshape", [classes, b.const([1, -1, 1])])]
    )
    nms_scores = b.op("Where", [same, rank_scores, zero])  # [B,C or 1,M]
    iou = b.op("Reshape", [iou_threshold or k.iou_threshold, b.const([1])])
    kmax = b.op("Reshape", [k.max_output_boxes, b.const([1])])
    selected = b.op("NonMaxSuppression", [cand, nms_scores, kmax, iou, b.const([0.5], np.float32)])
    return _first_k(b, selected, values, cand, cls, anchor, rank, m, k.max_output_boxes, indices)


def _first_k(
    b: NodeBuilder, selected, values, cand, cls, anchor, rank, m, k, indices: bool = True
) -> dict[str, str]:
    """Selected (b, c, m) triples -> the first K kept candidates in rank order, zero-padded.
    ``m`` and ``k``: ints (static) or int64 scalar tensors (dynamic)."""
    where = b.op("Gather", [selected, b.const([0, 2])], axis=1)  # [S, 2] (batch, candidate)
    ones = b.op(
        "ConstantOfShape",
        [b.dim(selected, 0)],
        value=b.numpy_helper.from_array(np.ones(1, np.float32)),
    )
    zeros = b.op(
        "ConstantOfShape",
        [b.op("Shape", [values])],
        value=b.numpy_helper.from_array(np.zeros(1, np.float32)),
    )
    keep = b.op("ScatterND", [zeros, where, ones])  # [B,M]: 1 where candidate m of image b was kept
    dynamic = isinstance(k, str)
    kk = b.op("Reshape", [b.op("Min", [k, m]), b.const([1])]) if dynamic else b.const([min(k, m)])
    top, pos = b.op(
        "TopK", [b.op("Mul", [keep, rank]), kk], outputs=2, axis=-1, largest=1, sorted=1
    )
    valid = b.op("Greater", [top, b.const(np.float32(0), np.float32)])  # [B,K']
    zero_f, zero_i = b.const(np.float32(0), np.float32), b.const(np.int32(0), np.int32)
    boxes = b.op("GatherND", [cand, b.unsqueeze(pos, [-1])], batch_dims=1)
    out = {
        "num_dets": b.op("ReduceSum", [b.op("Cast", [valid], to=6), b.const([1])], keepdims=1),
        "det_boxes": b.op("Where", [b.unsqueeze(valid, [-1]), boxes, zero_f]),
        "det_scores": b.op("Where", [valid, b.op("GatherElements", [values, pos], axis=1), zero_f]),
        "det_classes": b.op(
            "Where",
            [valid, b.op("Cast", [b.op("GatherElements", [cls, pos], axis=1)], to=6), zero_i],
        ),
    }
    fills = {"det_boxes": zero_f, "det_scores": zero_f, "det_classes": zero_i}
    if indices:
        minus_one = b.const(np.int32(-1), np.int32)
        out["det_indices"] = b.op(
            "Where",
            [valid, b.op("Cast", [b.op("GatherElements", [anchor, pos], axis=1)], to=6), minus_one],
        )
        fills["det_indices"] = minus_one
    if dynamic:  # pad the K axis by max(K - M, 0)
        short = b.op(
            "Reshape", [b.op("Max", [b.op("Sub", [k, m]), b.const(np.int64(0))]), b.const([1])]
        )
        for name, fill in fills.items():
            r = 3 if name == "det_boxes" else 2
            pads = b.op(
                "Concat", [b.const([0] * (r + 1)), short, b.const([0] * (r - 2), np.int64)], axis=0
            )
            out[name] = b.op("Pad", [out[name], pads, fill])
    elif k > m:  # fewer candidates than outputs: pad the K axis
        for name, fill in fills.items():
            r = 3 if name == "det_boxes" else 2
            out[name] = b.op(
                "Pad", [out[name], b.const([0] * r + [0, k - m] + [0] * (r - 2)), fill]
            )
    return out
