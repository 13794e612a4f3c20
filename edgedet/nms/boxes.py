"""Pieces of the EdgeDetNMS semantics shared by the reference and the host path (docs/nms.md §1-4).

Everything here is elementwise and in float32, so every implementation computes the same bits.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgedet.errors import InputError
from edgedet.nms.params import BOX_CENTER_SIZE, DEFAULT_BBOX_XFORM_CLIP, NMSParams


class NMSOutput(NamedTuple):
    """The four contract outputs plus the anchor index of each detection (-1 in padding).

    num_dets int32 [B, 1]; det_boxes float32 [B, K, 4] (x1, y1, x2, y2); det_scores float32 [B, K];
    det_classes int32 [B, K]; det_indices int32 [B, K].
    """

    num_dets: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_classes: np.ndarray
    det_indices: np.ndarray


def validate(boxes: np.ndarray, scores: np.ndarray, anchors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check ranks/shapes/dtypes; return float32 copies. InputError names the offending tensor."""
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    for name, t in (("boxes", boxes), ("scores", scores)) + ((("anchors", np.asarray(anchors)),) if anchors is not None else ()):
        if t.dtype.kind != "f":
            raise InputError(f"NMS input '{name}' has dtype {t.dtype}; expected float32 or float16")
    if scores.ndim != 3:
        raise InputError(f"NMS input 'scores' has shape {scores.shape}; expected [B, N, C]")
    b, n, c = scores.shape
    if boxes.shape not in ((b, n, 4), (b, n, c, 4)):
        raise InputError(f"NMS input 'boxes' has shape {boxes.shape}; with scores {scores.shape} it must be "
                         f"[{b}, {n}, 4] or per-class [{b}, {n}, {c}, 4]")
    if anchors is not None:
        anchors = np.asarray(anchors, np.float32)
        if anchors.shape not in ((1, n, 4), (b, n, 4)):
            raise InputError(f"NMS input 'anchors' has shape {anchors.shape}; expected [1, {n}, 4] or [{b}, {n}, 4]")
    return boxes.astype(np.float32), scores.astype(np.float32), anchors


def decode(boxes: np.ndarray, anchors: np.ndarray | None, params: NMSParams) -> np.ndarray:
    """Steps 1-2: anchor decode (if anchors), centre-size -> corners, canonical corners. float32, any leading dims."""
    f32 = np.float32
    if anchors is not None:
        a = anchors if boxes.ndim == 3 else anchors[:, :, None, :]
        s = np.asarray(params.box_scale, f32)
        d = boxes / s
        if params.box_coding == BOX_CENTER_SIZE:
            clip = f32(DEFAULT_BBOX_XFORM_CLIP)
            xy = d[..., :2] * a[..., 2:] + a[..., :2]
            wh = np.exp(np.minimum(d[..., 2:], clip)) * a[..., 2:]
            boxes = np.concatenate([xy, wh], -1).astype(f32)
        else:
            boxes = (a + d).astype(f32)
    if params.box_coding == BOX_CENTER_SIZE:
        half = boxes[..., 2:] * f32(0.5)
        boxes = np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], -1).astype(f32)
    return np.concatenate([np.minimum(boxes[..., :2], boxes[..., 2:]), np.maximum(boxes[..., :2], boxes[..., 2:])], -1)


def activate(scores: np.ndarray, params: NMSParams) -> np.ndarray:
    """Step 3: optional sigmoid (float32), NaN -> -inf so it is never selected."""
    s = scores.astype(np.float32)
    if params.score_activation:
        with np.errstate(over="ignore"):
            s = (np.float32(1) / (np.float32(1) + np.exp(-s))).astype(np.float32)
    return np.where(np.isnan(s), np.float32(-np.inf), s)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Step 6's IoU in float32, exactly: inter = iw*ih; union = (area_a + area_b) - inter; 0 if union <= 0.

    a, b: canonical boxes [..., 4] broadcastable against each other.
    """
    f32 = np.float32
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        iw = np.maximum(f32(0), np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
        ih = np.maximum(f32(0), np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
        inter = (iw * ih).astype(f32)
        area_a = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])).astype(f32)
        area_b = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])).astype(f32)
        union = ((area_a + area_b) - inter).astype(f32)
        return np.where(union > 0, inter / np.where(union > 0, union, f32(1)), f32(0)).astype(f32)


def empty_output(batch: int, k: int) -> NMSOutput:
    return NMSOutput(np.zeros((batch, 1), np.int32), np.zeros((batch, k, 4), np.float32),
                     np.zeros((batch, k), np.float32), np.zeros((batch, k), np.int32), np.full((batch, k), -1, np.int32))
