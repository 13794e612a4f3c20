"""Instance masks: paste fixed-size mask predictions into the original image (Mask R-CNN).

Follows torchvision's paste_masks_in_image: pad the M x M mask by one pixel, grow the box by
the same ratio, round the box to integers, resize the mask bilinearly (half-pixel centres,
as align_corners=False) to the box size and threshold it.
"""

from __future__ import annotations

import cv2
import numpy as np


def paste_masks(
    masks: np.ndarray,
    boxes: np.ndarray,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    padding: int = 1,
) -> np.ndarray:
    """masks float [K, M, M] probabilities, boxes [K, 4] (x1, y1, x2, y2) original pixels -> bool
    [K, H, W]."""
    h, w = image_size
    out = np.zeros((len(masks), h, w), dtype=bool)
    if len(masks) == 0:
        return out
    m = masks.shape[-1]
    padded = np.pad(masks.astype(np.float32), ((0, 0), (padding, padding), (padding, padding)))
    scale = (m + 2 * padding) / m
    for i, (mask, box) in enumerate(
        zip(padded, _expand(boxes.astype(np.float64), scale).astype(np.int64))
    ):
        bw, bh = max(int(box[2] - box[0] + 1), 1), max(int(box[3] - box[1] + 1), 1)
        resized = cv2.resize(mask, (bw, bh), interpolation=cv2.INTER_LINEAR) >= threshold
        x0, x1 = max(box[0], 0), min(box[2] + 1, w)
        y0, y1 = max(box[1], 0), min(box[3] + 1, h)
        if x1 > x0 and y1 > y0:
            out[i, y0:y1, x0:x1] = resized[y0 - box[1] : y1 - box[1], x0 - box[0] : x1 - box[0]]
    return out


def _expand(boxes: np.ndarray, scale: float) -> np.ndarray:
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * scale
    return np.concatenate([c - half, c + half], 1)
