"""Detection-aware parity between two detectors (artifacts or the PyTorch model).

Detections of A (the reference) and B are matched per image by IoU, greedily in A's
score order, regardless of class; then:
  matched_a   fraction of A's detections that found a partner in B (recall of B w.r.t. A)
  matched_b   fraction of B's detections that found a partner in A (precision)
  class_agreement  fraction of matched pairs with the same class
  score_delta |score_A - score_B| over matched pairs (mean, p95, max)
  iou         IoU of matched pairs (mean, min)
  count_delta |n_A - n_B| per image (mean, max)
Raw-tensor statistics (element-wise) are added by the caller when both sides expose them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of (x1, y1, x2, y2) boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    a, b = a.astype(np.float64), b.astype(np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(a, b, iou_threshold: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of Detections ``a`` to ``b``: (index_a, index_b, iou)."""
    ious = box_iou(a.boxes, b.boxes)
    taken, pairs = set(), []
    for i in np.argsort(-a.scores, kind="stable"):
        if ious.shape[1] == 0:
            break
        row = ious[i].copy()
        row[list(taken)] = -1
        j = int(row.argmax())
        if row[j] >= iou_threshold:
            taken.add(j)
            pairs.append((int(i), j, float(row[j])))
    return pairs


@dataclass
class ParityAccumulator:
    iou_threshold: float = 0.5
    n_a: int = 0
    n_b: int = 0
    matched: int = 0
    same_class: int = 0
    images: int = 0

    def __post_init__(self) -> None:
        self.score_deltas: list[float] = []
        self.ious: list[float] = []
        self.count_deltas: list[int] = []

    def add(self, a, b) -> None:
        pairs = match(a, b, self.iou_threshold)
        self.images += 1
        self.n_a += len(a)
        self.n_b += len(b)
        self.matched += len(pairs)
        self.same_class += sum(int(a.class_ids[i] == b.class_ids[j]) for i, j, _ in pairs)
        self.score_deltas += [abs(float(a.scores[i]) - float(b.scores[j])) for i, j, _ in pairs]
        self.ious += [iou for _, _, iou in pairs]
        self.count_deltas.append(abs(len(a) - len(b)))

    def result(self) -> dict:
        sd = np.asarray(self.score_deltas or [0.0])
        ious = np.asarray(self.ious or [0.0])
        cd = np.asarray(self.count_deltas or [0])
        return {
            "images": self.images,
            "detections_a": self.n_a,
            "detections_b": self.n_b,
            "iou_threshold": self.iou_threshold,
            "matched_a": self.matched / self.n_a if self.n_a else 1.0,
            "matched_b": self.matched / self.n_b if self.n_b else 1.0,
            "class_agreement": self.same_class / self.matched if self.matched else 1.0,
            "score_delta": {
                "mean": float(sd.mean()),
                "p95": float(np.percentile(sd, 95)),
                "max": float(sd.max()),
            },
            "iou": {"mean": float(ious.mean()), "min": float(ious.min())},
            "count_delta": {"mean": float(cd.mean()), "max": int(cd.max())},
        }


def elementwise(a: np.ndarray, b: np.ndarray) -> dict:
    """Element-wise agreement of two same-shaped tensors."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(a64 - b64)
    denom = np.linalg.norm(a64) * np.linalg.norm(b64)
    return {
        "max_abs": float(diff.max(initial=0)),
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "max_rel": float((diff / (np.abs(a64) + 1e-6)).max(initial=0)),
        "cosine": float((a64.ravel() @ b64.ravel()) / denom) if denom else 1.0,
    }


def compare_detectors(
    det_a,
    det_b,
    images: list[np.ndarray],
    iou_threshold: float = 0.5,
    min_score: float = 0.25,
    raw_pair=None,
) -> dict:
    """Run both detectors on decoded RGB ``images`` and report parity.

    ``raw_pair(image_batch) -> {name: (tensor_a, tensor_b)}`` optionally supplies raw tensors.
    """
    acc = ParityAccumulator(iou_threshold)
    raw: dict[str, list[dict]] = {}
    for img in images:
        a, b = det_a([img], min_score=min_score)[0], det_b([img], min_score=min_score)[0]
        acc.add(a, b)
        if raw_pair is not None:
            for name, (ta, tb) in raw_pair(img).items():
                raw.setdefault(name, []).append(elementwise(ta, tb))
    report = acc.result()
    report["min_score"] = min_score
    if raw:
        report["raw"] = {
            name: {
                k: (max if k.startswith("max") else (min if k == "cosine" else np.mean))(
                    [s[k] for s in stats]
                )
                for k in stats[0]
            }
            for name, stats in raw.items()
        }
        report["raw"] = {n: {k: float(v) for k, v in d.items()} for n, d in report["raw"].items()}
    return report


def compare_classifiers(cls_a, cls_b, images: list[np.ndarray]) -> dict:
    """Top-1 / top-5 agreement of two classifiers on decoded RGB ``images``.

    top1_agreement: same argmax; top5_agreement: A's top-1 is within B's top-5;
    top5_overlap: mean |top5(A) ∩ top5(B)| / 5; prob_delta: |p_A - p_B| of A's top-1 class.
    """
    top1 = top5 = 0
    overlap, deltas = [], []
    for img in images:
        a, b = cls_a([img], top_k=5)[0], cls_b([img], top_k=5)[0]
        top1 += int(a.class_ids[0] == b.class_ids[0])
        top5 += int(a.class_ids[0] in set(b.class_ids.tolist()))
        overlap.append(
            len(set(a.class_ids.tolist()) & set(b.class_ids.tolist())) / len(a.class_ids)
        )
        b_probs = dict(zip(b.class_ids.tolist(), b.probs.tolist()))
        deltas.append(abs(float(a.probs[0]) - b_probs.get(int(a.class_ids[0]), 0.0)))
    n = max(1, len(images))
    return {
        "task": "classify",
        "images": len(images),
        "top1_agreement": top1 / n,
        "top5_agreement": top5 / n,
        "top5_overlap": float(np.mean(overlap or [1.0])),
        "prob_delta": {
            "mean": float(np.mean(deltas or [0.0])),
            "max": float(np.max(deltas or [0.0])),
        },
    }
