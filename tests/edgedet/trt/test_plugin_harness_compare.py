"""benchmarks/gpu/plugin_harness.py's reading and comparison, on files written the way the GPU
harness writes them (the GPU run itself happens in benchmarks/gpu/run.sh)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# the repo root: benchmarks/ is not installed
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.gpu.plugin_harness import compare, read_case  # noqa: E402
from edgedet.nms import NMSParams, reference_nms  # noqa: E402


def write_case(folder, per_class, anchors, thresholds, corrupt=None):
    rng = np.random.default_rng(int(per_class) + 2 * int(anchors) + 4 * int(thresholds))
    b, n, c, k = 2, 40, 3, 8
    name = f"case_{int(per_class)}{int(anchors)}{int(thresholds)}"
    if anchors:
        boxes = rng.uniform(-2, 2, (b, n, c, 4) if per_class else (b, n, 4)).astype(np.float32)
        anc = np.concatenate(
            [rng.uniform(0, 100, (1, n, 2)), rng.uniform(8, 32, (1, n, 2))], -1
        ).astype(np.float32)
    else:
        xy = rng.uniform(0, 100, (b, n, c, 2) if per_class else (b, n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 35, xy.shape)], -1).astype(np.float32)
        anc = None
    scores = rng.random((b, n, c)).astype(np.float32)
    st, it = (0.2, 0.4) if thresholds else (0.3, 0.5)
    p = NMSParams(
        score_threshold=st,
        iou_threshold=it,
        max_output_boxes=k,
        top_k=100,
        box_coding=int(anchors),
        box_scale=(10, 10, 5, 5),
    )
    out = reference_nms(boxes, scores, p, anc)
    if corrupt:
        getattr(out, corrupt)[0, -1] += 1  # a padding row the kernels did not clear
    for suffix, arr in (
        ("boxes.f32", boxes),
        ("scores.f32", scores),
        ("num_dets.i32", out.num_dets),
        ("det_boxes.f32", out.det_boxes),
        ("det_scores.f32", out.det_scores),
        ("det_classes.i32", out.det_classes),
    ):
        arr.astype(arr.dtype).tofile(folder / f"{name}.{suffix}")
    if anchors:
        anc.tofile(folder / f"{name}.anchors.f32")
    if thresholds:
        np.array([st, it], np.float32).tofile(folder / f"{name}.thresholds.f32")
    return (
        f"CASE {name} B={b} N={n} C={c} K={k} score_threshold=0.3 iou_threshold=0.5 top_k=100"
        f" box_coding={int(anchors)} per_class={int(per_class)} anchors={int(anchors)}"
        f" thresholds={int(thresholds)}"
    )


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("anchors", [False, True])
@pytest.mark.parametrize("thresholds", [False, True])
def test_outputs_equal_to_the_oracle_pass(tmp_path, per_class, anchors, thresholds):
    result = compare(read_case(tmp_path, write_case(tmp_path, per_class, anchors, thresholds)))
    assert result["ok"] and result["detections"] > 0


@pytest.mark.parametrize("field", ["det_classes", "det_scores"])
def test_a_wrong_output_fails(tmp_path, field):
    result = compare(read_case(tmp_path, write_case(tmp_path, True, True, True, corrupt=field)))
    assert not result["ok"]
