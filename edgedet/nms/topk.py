"""Score threshold + top-k, no NMS: the selection for end-to-end heads (DETR family, YOLOv10 /
YOLO26 end-to-end, RT-DETR), on the host. edgedet/onnx/nms/topk.py builds the same function from
standard ONNX ops.

Semantics (docs/nms.md, "End-to-end heads"), per image:
  1. boxes are decoded and canonicalised as EdgeDetNMS steps 1-2 (corners or centre-size, no
  anchors); 2. scores are activated as step 3 (sigmoid when ``score_activation``; NaN never
  selected); 3. candidates are the (box n, class c) pairs with score > score_threshold (strict,
     float32), the background class excluded;
  4. ranked by score descending, ties by lower flat index n * C + c (the NMS rank rule);
  5. the first K = max_output_boxes are output, zero-padded. Nothing is suppressed.
So the result equals EdgeDetNMS with iou_threshold 1.0 and top_k 0 on the same inputs (an IoU never
exceeds 1). ``iou_threshold`` and ``top_k`` of the NMSParams do not apply.

With ``labels`` [B, N] the head has already chosen one class per box (Ultralytics end-to-end
``[B, 300, 6]``, DETR's softmax argmax): ``scores`` is [B, N, 1] and a candidate's class is
labels[n].
"""

from __future__ import annotations

import numpy as np

from edgedet.errors import InputError
from edgedet.nms.boxes import NMSOutput, activate, decode, empty_output, validate
from edgedet.nms.params import NMSParams

# TensorRT's TopK layer takes k <= 3840 (TensorRT operator reference, TopK: "k <= d, k <= 3840", the
# 10.x and 11.x documentation; 8.6 allowed 1024): the in-graph form cannot output more detections.
TRT_MAX_TOPK = 3840


def select_topk(boxes, scores, params: NMSParams, labels=None) -> NMSOutput:
    """boxes [B, N, 4], scores [B, N, C] (or [B, N, 1] with ``labels`` [B, N] integers) -> NMSOutput
    with K = params.max_output_boxes; det_indices holds the box index n of each detection."""
    boxes, scores, _ = validate(boxes, scores)
    if boxes.ndim != 3:
        raise InputError(f"end-to-end selection takes boxes [B, N, 4], got {boxes.shape}")
    b, n, c = scores.shape
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (b, n) or labels.dtype.kind not in "iuf":
            raise InputError(
                f"'labels' has shape {labels.shape} ({labels.dtype}); expected numbers [{b}, {n}]"
            )
        if c != 1:
            raise InputError(
                "with 'labels' the scores must be [B, N, 1] (one score per box), got"
                f" {scores.shape}"
            )
        labels = labels.astype(np.int64)
    boxes = decode(boxes, None, params)
    scores = activate(scores, params)
    k = params.max_output_boxes
    out = empty_output(b, k)
    threshold = np.float32(params.score_threshold)
    for i in range(b):
        flat = scores[i].ravel()
        cls = labels[i] if labels is not None else np.tile(np.arange(c), n)
        idx = np.flatnonzero((flat > threshold) & (cls != params.background_class))
        idx = idx[np.argsort(-flat[idx], kind="stable")[:k]]  # stable: ties keep flat-index order
        anchor = idx // c
        m = len(idx)
        out.num_dets[i, 0] = m
        out.det_boxes[i, :m] = boxes[i, anchor]
        out.det_scores[i, :m] = flat[idx]
        out.det_classes[i, :m] = cls[idx]
        out.det_indices[i, :m] = anchor
    return out


def end_to_end_params(
    score_threshold: float = 0.25,
    max_output_boxes: int = 300,
    background_class: int = -1,
    score_activation: bool = False,
) -> NMSParams:
    """The NMSParams an end-to-end artifact records: IoU 1.0 and top_k 0 (nothing suppressed, no
    pre-cut), so even an NMS that reads them by mistake computes the same selection."""
    return NMSParams(
        score_threshold=score_threshold,
        iou_threshold=1.0,
        max_output_boxes=max_output_boxes,
        top_k=0,
        background_class=background_class,
        score_activation=score_activation,
    )
