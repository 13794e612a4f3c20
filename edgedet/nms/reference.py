"""The EdgeDetNMS oracle: a plain, obviously correct transcription of docs/nms.md.

Slow on purpose (Python loops over candidates); every other implementation - host,
ONNX graph, CUDA, TensorRT plugin - is tested against this one.
"""

from __future__ import annotations

import numpy as np

from edgedet.nms.boxes import NMSOutput, activate, decode, empty_output, iou, validate
from edgedet.nms.params import NMSParams


def reference_nms(boxes, scores, params: NMSParams, anchors=None) -> NMSOutput:
    """boxes [B, N, 4] or [B, N, C, 4], scores [B, N, C], anchors [1|B, N, 4] -> NMSOutput (K =
    max_output_boxes)."""
    boxes, scores, anchors = validate(boxes, scores, anchors)
    boxes = decode(boxes, anchors, params)
    scores = activate(scores, params)
    out = empty_output(scores.shape[0], params.max_output_boxes)
    for b in range(scores.shape[0]):
        kept = _one_image(boxes[b], scores[b], params)
        out.num_dets[b, 0] = len(kept)
        for slot, (score, n, c, box) in enumerate(kept):
            out.det_boxes[b, slot] = box
            out.det_scores[b, slot] = score
            out.det_classes[b, slot] = c
            out.det_indices[b, slot] = n
    return out


def _one_image(boxes: np.ndarray, scores: np.ndarray, params: NMSParams) -> list:
    n_anchors, n_classes = scores.shape
    threshold = np.float32(params.score_threshold)
    candidates = []  # step 4
    for n in range(n_anchors):
        for c in range(n_classes):
            if c != params.background_class and scores[n, c] > threshold:
                box = boxes[n, c] if boxes.ndim == 3 else boxes[n]
                candidates.append((scores[n, c], n, c, box))
    # step 5: score desc, then anchor, then class
    candidates.sort(key=lambda t: (-t[0], t[1], t[2]))
    if params.top_k > 0:
        candidates = candidates[: params.top_k]
    kept = []  # step 6: greedy
    iou_threshold = np.float32(params.iou_threshold)
    for cand in candidates:
        if all(
            not (iou(cand[3], k[3]) > iou_threshold)
            for k in kept
            if params.class_agnostic or k[2] == cand[2]
        ):
            kept.append(cand)
            if len(kept) == params.max_output_boxes:  # step 7: only the first K are output
                break
    return kept
