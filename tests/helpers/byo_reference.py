"""Independent numpy post-processing for the attach-nms parity tests: what a third-party tool's own
code does after its model runs (greedy per-class NMS, letterbox), written plainly, not shared with
edgedet's implementation."""

import cv2
import numpy as np


def nms(boxes, scores, p):
    """Per-class greedy NMS, score > threshold, IoU > threshold suppresses; [(box, score,
    class)]."""
    cand = [
        (scores[n, c], n, c)
        for n in range(len(boxes))
        for c in range(scores.shape[1])
        if scores[n, c] > p.score_threshold
    ]
    cand.sort(key=lambda t: (-t[0], t[1], t[2]))
    kept = []
    for s, n, c in cand[: p.top_k]:
        if all(k[2] != c or iou(boxes[n], k[0]) <= p.iou_threshold for k in kept):
            kept.append((boxes[n], s, c))
    return kept[: p.max_output_boxes]


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union <= 0:  # both clipped to nothing (a box entirely in the padding): equal or not
        return 1.0 if np.allclose(a, b, atol=1e-3) else 0.0
    return inter / union


def letterbox_ref(img, size, top_left, rounding=int):
    """YOLOX: int() of the resized size, image top-left; Ultralytics: round(), centred with
    round(pad / 2 -+ 0.1) above/left."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nh, nw = rounding(h * r), rounding(w * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (0, 0) if top_left else (round((size - nh) / 2 - 0.1), round((size - nw) / 2 - 0.1))
    canvas[top : top + nh, left : left + nw] = cv2.resize(
        img, (nw, nh), interpolation=cv2.INTER_LINEAR
    )
    return canvas, r, left, top


def match(dets, ref, score_tol=1e-4):
    """Smallest IoU over reference detections, each matched to the same-class detection (score
    within
    ``score_tol``) it overlaps most."""
    worst = 1.0
    for box, score, c in ref:
        same = [
            i
            for i in range(len(dets))
            if dets.class_ids[i] == c and abs(dets.scores[i] - score) < score_tol
        ]
        best = max(same, key=lambda i: iou(dets.boxes[i], box), default=None)
        assert best is not None, (
            f"reference detection {box} class {c} score {score} has no counterpart"
        )
        worst = min(worst, iou(dets.boxes[best], box))
    return worst
