"""Plausibility checks on detector outputs that claim the contract's raw form.

A third-party file whose outputs merely carry the contract's names (``boxes`` / ``scores``) once
ran as if it followed the contract and returned 100 zero-width boxes with exit code 0. These
checks look at one batch of outputs and say what is wrong and which attach-nms flag fixes it:

  boxes   [B, N, 4] should be (x1, y1, x2, y2) in input pixels: boxes within 0..1.5 of a larger
          input are normalised (``--normalized``); boxes that all sit in a corner a few pixels
          wide are raw grid offsets (``--decode yolox`` / ``ltrb``); centres mostly far outside
          the input are deltas against priors (``--decode ssd``); mostly x2 < x1 means centre
          and size (``--box-format cxcywh``)
  scores  [B, N, C] should be probabilities in 0..1; outside that they are logits
          (``--score-activation`` for sigmoid, ``--softmax``)

numpy only: the runtime (no manifest) and attach-nms (before writing a file) share them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Problem:
    what: str  # normalized | undecoded | inverted | logits | nonfinite
    message: str
    flag: str  # the attach-nms flag that fixes it ('' when none does)


def raw_output_problems(
    boxes: np.ndarray, scores: np.ndarray, height: int, width: int
) -> list[Problem]:
    """Problems of raw ``boxes`` [B, N, 4] / ``scores`` [B, N, C] for an input of height x width."""
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    if not (np.all(np.isfinite(boxes)) and np.all(np.isfinite(scores))):
        return [Problem("nonfinite", "the outputs hold NaN or Inf on a plain image", "")]
    problems = []
    lo, hi = float(scores.min(initial=0)), float(scores.max(initial=0))
    if lo < -1e-3 or hi > 1 + 1e-3:
        problems.append(
            Problem(
                "logits",
                f"scores range {lo:.3g}..{hi:.3g}, not probabilities in 0..1 (logits)",
                (
                    "--score-activation"
                    if scores.shape[-1] == 1
                    else "--score-activation (or --softmax)"
                ),
            )
        )
    problems += box_problems(boxes.reshape(-1, 4), height, width)
    return problems


def box_problems(boxes: np.ndarray, height: int, width: int) -> list[Problem]:
    """Problems of (x1, y1, x2, y2) boxes [M, 4] said to be in pixels of a height x width input."""
    if len(boxes) == 0:
        return []
    side = max(height, width)
    extent = float(np.percentile(np.abs(boxes), 99))
    if side >= 32 and extent <= 1.5:
        return [
            Problem(
                "normalized",
                f"boxes lie within 0..{extent:.2g} of a {height}x{width} input "
                "(normalised coordinates)",
                "--normalized",
            )
        ]
    if side >= 32 and extent < 0.05 * side:
        return [
            Problem(
                "undecoded",
                f"all boxes sit within {extent:.2g} px of the origin of a {height}x{width} "
                "input (raw grid offsets, not decoded boxes)",
                "--decode yolox (or --decode ltrb)",
            )
        ]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    outside = float(
        np.mean(
            (cx < -0.25 * width)
            | (cx > 1.25 * width)
            | (cy < -0.25 * height)
            | (cy > 1.25 * height)
        )
    )
    if outside > 0.5:
        return [
            Problem(
                "outside",
                f"{outside:.0%} of box centres lie far outside the {height}x{width} input (deltas "
                "against prior boxes, or another unit)",
                "--decode ssd --anchors PRIORS",
            )
        ]
    inverted = float(np.mean((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])))
    if inverted > 0.5:
        return [
            Problem(
                "inverted",
                f"{inverted:.0%} of boxes have x2 < x1 or y2 < y1 (centre and size, not corners)",
                "--box-format cxcywh",
            )
        ]
    return []


def detection_problems(
    det_boxes: np.ndarray, num_dets: np.ndarray, height: int, width: int
) -> list[Problem]:
    """Problems of NMS-form outputs: kept boxes [B, K, 4] (first num_dets rows valid)."""
    kept = [det_boxes[b, : int(n)] for b, n in enumerate(np.asarray(num_dets).reshape(-1))]
    boxes = np.concatenate(kept) if kept else np.zeros((0, 4))
    return [p for p in box_problems(boxes, height, width) if p.what != "inverted"]


def refuse_implausible(outputs: dict, kind: str, height: int, width: int, path) -> None:
    """A model run without a manifest: ModelError naming the problem and the attach-nms command
    when its outputs carry the contract's names but not its meaning."""
    from edgedet import contract
    from edgedet.errors import ModelError

    if kind == contract.KIND_RAW:
        problems = raw_output_problems(
            outputs[contract.RAW_BOXES], outputs[contract.RAW_SCORES], height, width
        )
        command = f"edgedet attach-nms {path} --boxes boxes --scores scores"
    else:
        problems = detection_problems(
            outputs[contract.DET_BOXES], outputs[contract.NUM_DETS], height, width
        )
        command = ""
    if not problems:
        return
    p = problems[0]
    fix = (
        f"if it is a third-party detector, convert it: {command} {p.flag} -o converted.onnx "
        f"(`edgedet attach-nms {path} --inspect` suggests every flag)"
        if command
        else "re-export it with edgedet (its sidecar manifest is missing)"
    )
    raise ModelError(
        f"{path} has no manifest and its outputs do not follow the edgedet contract: {p.message};"
        f" {fix}"
    )
