"""A two-stage (R-CNN-shaped) model with two EdgeDetNMS nodes, built from standard ONNX ops: the
split path's tests (tests/edgedet/test_ort_split.py) and the end-to-end benchmark's host-NMS timing
(tests/benchmarks/test_e2e_bench.py)."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgedet import contract
from edgedet.nms import NMSParams
from edgedet.onnx.nms.edgedet_op import add_function_bodies, make_node

N, LEVELS, K1, C, K2, SIZE = 64, 3, 16, 5, 30, 32


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def two_stage_model():
    """images [1,3,32,32] -> RPN-like NMS (N boxes, LEVELS classes, K1 kept) -> per-class
    boxes/scores of the K1 proposals, which also read the first stage's pre-NMS tensor ``m`` ->
    final NMS -> contract outputs. Only Add/Mul/Slice arithmetic: the function body and the host NMS
    must agree bit for bit."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 24, (1, N, 2)).astype(np.float32)
    boxes1 = np.concatenate([xy, xy + rng.uniform(4, 12, (1, N, 2)).astype(np.float32)], -1)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m4"], keepdims=1, axes=[1, 2, 3]),
        helper.make_node("Reshape", ["m4", "shape_b11"], ["m"]),
        helper.make_node("Mul", ["m", "zero"], ["m0"]),
        helper.make_node("Add", ["boxes1_c", "m0"], ["boxes1"]),
        helper.make_node("Mul", ["scores1_c", "m"], ["scores1"]),
        make_node(
            ["boxes1", "scores1"],
            [f"rpn/{o}" for o in contract.NMS_OUTPUTS],
            NMSParams(score_threshold=0.05, iou_threshold=0.5, max_output_boxes=K1, top_k=0),
            "rpn_nms",
        ),
        # stage 2: per-class boxes = proposal + class offset; scores from the proposal's x1 and m
        # (stage 1)
        helper.make_node("Unsqueeze", ["rpn/det_boxes", "axis2"], ["props4"]),
        helper.make_node("Add", ["props4", "offsets_c"], ["boxes2"]),
        helper.make_node("Slice", ["rpn/det_boxes", "s0", "s1", "s2"], ["x1"]),
        helper.make_node("Mul", ["x1", "inv32"], ["x1n"]),
        helper.make_node("Add", ["x1n", "m"], ["x1m"]),
        helper.make_node("Mul", ["scores2_c", "x1m"], ["scores2"]),
        make_node(
            ["boxes2", "scores2"],
            list(contract.NMS_OUTPUTS),
            NMSParams(
                score_threshold=0.5,
                iou_threshold=0.4,
                max_output_boxes=K2,
                top_k=40,
                background_class=0,
            ),
            "box_nms",
        ),
    ]
    inits = [
        _init("shape_b11", np.array([-1, 1, 1], np.int64)),
        _init("zero", np.float32(0)),
        _init("boxes1_c", boxes1),
        _init("scores1_c", rng.uniform(0, 1, (1, N, LEVELS)).astype(np.float32)),
        _init("axis2", np.array([2], np.int64)),
        _init("offsets_c", rng.choice([-2.0, 0.0, 1.5], (1, 1, C, 4)).astype(np.float32)),
        _init("s0", np.array([0], np.int64)),
        _init("s1", np.array([1], np.int64)),
        _init("s2", np.array([2], np.int64)),
        _init("inv32", np.float32(1 / 32)),
        _init("scores2_c", rng.uniform(0, 1, (1, K1, C)).astype(np.float32)),
    ]
    outputs = [
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, [1, 1]),
        helper.make_tensor_value_info("det_boxes", TensorProto.FLOAT, [1, K2, 4]),
        helper.make_tensor_value_info("det_scores", TensorProto.FLOAT, [1, K2]),
        helper.make_tensor_value_info("det_classes", TensorProto.INT32, [1, K2]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_stage",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return add_function_bodies(model)
