"""The ONNX NonMaxSuppression backend test vectors, run through the reference oracle.

The vectors are an outside oracle for the greedy step. They live in the onnx package: as
``onnx/backend/test/data/node/test_nonmaxsuppression_*`` .pb files where the wheel ships them, and
always as the generating cases in ``onnx.backend.test.case.node`` (the wheels of onnx >= 1.17 leave
the .pb data out), which is used when the .pb files are absent.
"""

from pathlib import Path

import numpy as np
import pytest

from edgedet.nms import NMSParams, reference_nms

onnx = pytest.importorskip("onnx")


def vectors() -> list[tuple[str, dict, int, np.ndarray]]:
    """(name, inputs by name, center_point_box, expected selected_indices [S, 3])."""
    data = Path(onnx.__file__).parent / "backend/test/data/node"
    found = []
    for case in sorted(data.glob("test_nonmaxsuppression_*")):
        model = onnx.load(str(case / "model.onnx"))
        names = [i.name for i in model.graph.input]
        sets = sorted(case.glob("test_data_set_*"))
        inputs = [
            onnx.numpy_helper.to_array(onnx.load_tensor(str(f)))
            for f in sorted(sets[0].glob("input_*.pb"))
        ]
        expected = onnx.numpy_helper.to_array(onnx.load_tensor(str(sets[0] / "output_0.pb")))
        found.append((case.name, dict(zip(names, inputs)), _center(model.graph.node[0]), expected))
    if found:
        return found
    for case in _generated_cases():
        names = [i.name for i in case.model.graph.input]
        inputs, outputs = case.data_sets[0]
        found.append(
            (case.name, dict(zip(names, inputs)), _center(case.model.graph.node[0]), outputs[0])
        )
    return found


def _generated_cases() -> list:
    """The NonMaxSuppression generating cases. Defining their class records them (its metaclass runs
    every export_*), so importing that one module is enough; collect_testcases would import every
    op's module (~15 s). Falls back to it if onnx reorganises this private registry."""
    import onnx.backend.test.case.node as node_cases

    try:
        import onnx.backend.test.case.node.nonmaxsuppression  # noqa: F401

        cases = [
            c
            for c in node_cases._NodeTestCases
            if c.model.graph.node[0].op_type == "NonMaxSuppression"
        ]
        if cases:
            return cases
    except (ImportError, AttributeError):
        pass
    return node_cases.collect_testcases("NonMaxSuppression")


def _center(node) -> int:
    return next((a.i for a in node.attribute if a.name == "center_point_box"), 0)


def onnx_nms_by_reference(inputs: dict, center_point_box: int) -> np.ndarray:
    """ONNX NonMaxSuppression semantics from reference_nms: one single-class call per (batch,
    class).

    ONNX boxes are [y1, x1, y2, x2] (IoU does not care which axis comes first) or centre-size;
    scores [B, C, N]; a missing score_threshold filters nothing; the limit is per class.
    """
    boxes, scores = inputs["boxes"], inputs["scores"]
    limit = int(inputs.get("max_output_boxes_per_class", np.zeros(1))[0])
    iou = float(inputs.get("iou_threshold", np.zeros(1))[0])
    score = (
        float(inputs["score_threshold"][0])
        if "score_threshold" in inputs
        else -np.finfo(np.float32).max
    )
    rows = []
    for b in range(boxes.shape[0]):
        for c in range(scores.shape[1]):
            if limit <= 0:
                continue
            p = NMSParams(
                score_threshold=score,
                iou_threshold=iou,
                max_output_boxes=limit,
                top_k=0,
                box_coding=center_point_box,
            )
            out = reference_nms(boxes[b : b + 1], scores[b : b + 1, c, :, None], p)
            rows += [(b, c, int(n)) for n in out.det_indices[0, : out.num_dets[0, 0]]]
    return np.array(rows, np.int64).reshape(-1, 3)


CASES = vectors()


def test_vectors_found():
    assert len(CASES) >= 9, "the onnx package should carry the NonMaxSuppression backend cases"


@pytest.mark.parametrize("name, inputs, center, expected", CASES, ids=[c[0] for c in CASES])
def test_onnx_backend_vector(name, inputs, center, expected):
    np.testing.assert_array_equal(onnx_nms_by_reference(inputs, center), expected)
