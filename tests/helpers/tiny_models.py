"""Registry of tiny generated ONNX models that follow the edgedet contract (no torch needed).

Each builder writes ``<dir>/<name>.onnx`` (+ manifest when asked) and returns its path.
Outputs depend on the input, so a test can tell a real run from a constant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgedet.manifest import InputInfo, Manifest, write_manifest
from edgedet.nms.params import NMSParams

CLASS_NAMES = ["circle", "square", "triangle"]
# Three fixed boxes (input pixels, 64x64 input): two overlapping class-0 boxes, one class-1 box.
RAW_BOXES = np.array([[8, 8, 40, 40], [10, 10, 42, 42], [30, 2, 60, 20]], dtype=np.float32)
RAW_SCORES = np.array([[0.9, 0.05, 0.0], [0.8, 0.1, 0.0], [0.1, 0.7, 0.2]], dtype=np.float32)


def _mean_node(out: str) -> list:
    """mean of all pixels -> [B, 1, 1] (scalar per image); lets outputs depend on the input."""
    return [
        helper.make_node("ReduceMean", ["images"], ["m4"], keepdims=1, axes=[1, 2, 3]),
        helper.make_node("Reshape", ["m4", "shape_b11"], [out]),
    ]


def raw_model(batch: int | None = 1, size: int = 64, opset: int = 17) -> onnx.ModelProto:
    """images [B,3,size,size] -> boxes [B,3,4] = RAW_BOXES, scores [B,3,3] = RAW_SCORES * 2 *
    mean(images)."""
    b = batch if batch else "batch"
    nodes = _mean_node("m") + [
        helper.make_node("Mul", ["m", "two"], ["m2"]),
        helper.make_node("Mul", ["scores_c", "m2"], ["scores"]),
        # [B,1,1] of zeros, to broadcast boxes over batch
        helper.make_node("Mul", ["m", "zero"], ["m0"]),
        helper.make_node("Add", ["boxes_c", "m0"], ["boxes"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape_b11"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(RAW_SCORES[None], "scores_c"),
        numpy_helper.from_array(RAW_BOXES[None], "boxes_c"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_raw",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [b, 3, size, size])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [b, 3, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [b, 3, 3]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def nms_model(
    batch: int | None = 1, size: int = 64, k: int = 4, opset: int = 17
) -> onnx.ModelProto:
    """images -> contract NMS outputs: 2 detections, score of the first = mean(images)."""
    b = batch if batch else "batch"
    boxes = np.zeros((1, k, 4), np.float32)
    boxes[0, 0] = [8, 8, 40, 40]
    boxes[0, 1] = [30, 2, 60, 20]
    scores = np.zeros((1, k), np.float32)
    scores[0, :2] = [1.0, 0.5]
    classes = np.zeros((1, k), np.int32)
    classes[0, 1] = 1
    nodes = _mean_node("m") + [
        helper.make_node("Reshape", ["m", "shape_b1"], ["m_b1"]),
        helper.make_node("Mul", ["scores_c", "m_b1"], ["det_scores"]),
        helper.make_node("Mul", ["m", "zero"], ["m0"]),
        helper.make_node("Add", ["boxes_c", "m0"], ["det_boxes"]),
        helper.make_node("Cast", ["m_b1"], ["m_i"], to=TensorProto.INT32),
        helper.make_node("Mul", ["m_i", "zero_i"], ["m_i0"]),
        helper.make_node("Add", ["classes_c", "m_i0"], ["det_classes"]),
        helper.make_node("Add", ["two_i", "m_i0"], ["num_dets"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape_b11"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "shape_b1"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array(0, dtype=np.int32), "zero_i"),
        numpy_helper.from_array(np.array([[2]], dtype=np.int32), "two_i"),
        numpy_helper.from_array(scores, "scores_c"),
        numpy_helper.from_array(boxes, "boxes_c"),
        numpy_helper.from_array(classes, "classes_c"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_nms",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [b, 3, size, size])],
        [
            helper.make_tensor_value_info("num_dets", TensorProto.INT32, [b, 1]),
            helper.make_tensor_value_info("det_boxes", TensorProto.FLOAT, [b, k, 4]),
            helper.make_tensor_value_info("det_scores", TensorProto.FLOAT, [b, k]),
            helper.make_tensor_value_info("det_classes", TensorProto.INT32, [b, k]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def save(
    model: onnx.ModelProto,
    path: Path,
    manifest: bool = True,
    kind: str = "nms",
    batch: int = 1,
    size: int = 64,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    if manifest:
        nms = NMSParams(score_threshold=0.3, iou_threshold=0.5, max_output_boxes=4, top_k=0)
        write_manifest(
            path,
            Manifest(
                family="tiny",
                model=path.stem,
                class_names=list(CLASS_NAMES),
                input=InputInfo("images", (batch, 3, size, size), "float32"),
                output_kind=kind,
                nms=nms,
                nms_where="graph" if kind == "nms" else "host",
                category_ids=[1, 2, 3],
            ),
        )
    return path
