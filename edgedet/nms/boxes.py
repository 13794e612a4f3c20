"""Pieces of the EdgeDetNMS semantics shared by the reference and the host path (docs/nms.md, steps
1-3 and the IoU of step 6), plus the output container.

Everything is elementwise float32 arithmetic, so implementations that follow the same formulas
compute the same bits; only exp (anchor decode, sigmoid) may differ between libraries.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgedet.errors import InputError
from edgedet.nms.params import BOX_CENTER_SIZE, DEFAULT_BBOX_XFORM_CLIP, NMSParams


class NMSOutput(NamedTuple):
    """The four contract outputs plus the anchor index of each detection.

    num_dets int32 [B, 1]; det_boxes float32 [B, K, 4] canonical (x1, y1, x2, y2); det_scores
    float32 [B, K]; det_classes int32 [B, K]; det_indices int32 [B, K] (anchor n of each detection,
    -1 in padding; not part of the graph contract, used to gather per-detection data such as masks).
    Rows past num_dets are zero.
    """

    num_dets: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_classes: np.ndarray
    det_indices: np.ndarray


def validate(boxes, scores, anchors=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check ranks, shapes and dtypes; return float32 arrays (no copy when already float32).

    boxes [B, N, 4] or [B, N, C, 4]; scores [B, N, C]; anchors [1|B, N, 4] or None.
    Raises InputError naming the offending tensor.
    """
    arrays = {"boxes": np.asarray(boxes), "scores": np.asarray(scores)}
    if anchors is not None:
        arrays["anchors"] = np.asarray(anchors)
    for name, t in arrays.items():
        if t.dtype.kind != "f":
            raise InputError(
                f"NMS input '{name}' has dtype {t.dtype}; expected a float type (float32 or"
                " float16)"
            )
    boxes, scores = arrays["boxes"], arrays["scores"]
    if scores.ndim != 3:
        raise InputError(f"NMS input 'scores' has shape {scores.shape}; expected [B, N, C]")
    b, n, c = scores.shape
    if boxes.shape not in ((b, n, 4), (b, n, c, 4)):
        raise InputError(
            f"NMS input 'boxes' has shape {boxes.shape}; with 'scores' {scores.shape} it must be "
            f"[{b}, {n}, 4] or per-class [{b}, {n}, {c}, 4]"
        )
    if anchors is not None and arrays["anchors"].shape not in ((1, n, 4), (b, n, 4)):
        raise InputError(
            f"NMS input 'anchors' has shape {arrays['anchors'].shape}; expected [1, {n}, 4] or"
            f" [{b}, {n}, 4]"
        )
    as32 = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    return as32["boxes"], as32["scores"], as32.get("anchors")


def decode(boxes: np.ndarray, anchors: np.ndarray | None, params: NMSParams) -> np.ndarray:
    """Steps 1-2: anchor decode (when anchors), centre-size -> corners, canonical corners.

    boxes [..., 4] float32 coded as params.box_coding (anchor deltas when ``anchors``, which
    broadcast against boxes and use the same coding). Returns canonical (x1, y1, x2, y2) float32.
    """
    # inf / NaN coordinates propagate as the spec says
    with np.errstate(invalid="ignore", over="ignore"):
        return canonical(_corners(boxes, anchors, params))


def _corners(boxes: np.ndarray, anchors: np.ndarray | None, params: NMSParams) -> np.ndarray:
    f32 = np.float32
    if anchors is not None:
        if boxes.ndim == anchors.ndim + 1:  # per-class boxes [..., N, C, 4] share the anchor of n
            anchors = np.expand_dims(anchors, -2)
        d = boxes / np.asarray(params.box_scale, f32)
        if params.box_coding == BOX_CENTER_SIZE:
            xy = d[..., :2] * anchors[..., 2:] + anchors[..., :2]  # c = a_c + (d / s) * a_size
            # torchvision BoxCoder clamps before exp so a wild delta cannot overflow to inf
            wh = np.exp(np.minimum(d[..., 2:], f32(DEFAULT_BBOX_XFORM_CLIP))) * anchors[..., 2:]
            boxes = np.concatenate([xy, wh], -1).astype(f32)
        else:
            boxes = (anchors + d).astype(f32)
    if params.box_coding == BOX_CENTER_SIZE:
        half = boxes[..., 2:] * f32(0.5)  # exactly w / 2
        boxes = np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], -1)
    return boxes


def canonical(boxes: np.ndarray) -> np.ndarray:
    """Step 2: corners [..., 4] -> (min x, min y, max x, max y) float32; NaN coordinates stay
    NaN."""
    lo, hi = boxes[..., :2], boxes[..., 2:]
    return np.concatenate([np.minimum(lo, hi), np.maximum(lo, hi)], -1).astype(
        np.float32, copy=False
    )


def activate(scores: np.ndarray, params: NMSParams) -> np.ndarray:
    """Step 3: sigmoid 1 / (1 + exp(-s)) in float32 when params.score_activation; NaN -> -inf."""
    s = np.asarray(scores, np.float32)
    if params.score_activation:
        with np.errstate(over="ignore"):
            s = np.float32(1) / (np.float32(1) + np.exp(-s))
    return np.where(np.isnan(s), np.float32(-np.inf), s)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Step 6's IoU in float32, operation by operation as the spec writes it.

    a, b: canonical boxes [..., 4] that broadcast. iw = max(0, min(x2) - max(x1)), ih likewise;
    inter = iw * ih; union = (area_a + area_b) - inter; IoU = inter / union if union > 0 else 0.
    NaN propagates (np.maximum keeps NaN), and a NaN IoU never suppresses.
    """
    f32 = np.float32
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        iw = np.maximum(f32(0), np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
        ih = np.maximum(f32(0), np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
        inter = iw * ih
        area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
        area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
        union = (area_a + area_b) - inter
        return np.where(union > 0, inter / np.where(union > 0, union, f32(1)), f32(0)).astype(f32)


def empty_output(batch: int, k: int) -> NMSOutput:
    """Zero-filled outputs for ``batch`` images and K = ``k`` (det_indices -1)."""
    return NMSOutput(
        np.zeros((batch, 1), np.int32),
        np.zeros((batch, k, 4), np.float32),
        np.zeros((batch, k), np.float32),
        np.zeros((batch, k), np.int32),
        np.full((batch, k), -1, np.int32),
    )
