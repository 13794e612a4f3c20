"""NodeBuilder, the one ONNX node builder: a function body (Constant nodes) or a graph
(initializers)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from edgedet.onnx.builder import NodeBuilder  # noqa: E402


def _model(graph_nodes, initializers, out: str):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    graph = helper.make_graph(graph_nodes, "g", [x], [y], initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    return sess.run(None, {"x": x})[0]


def test_graph_mode_appends_to_the_graph_with_initializer_constants():
    model = _model([], [], "y")
    b = NodeBuilder("byo_", model.graph)
    out = b.op("Mul", [b.slice_last("x", 1, 3), b.const(2.0, np.float32)])
    model.graph.node.append(helper.make_node("Identity", [out], ["y"]))
    assert [i.name for i in model.graph.initializer] == ["byo_c_1", "byo_c_2", "byo_c_3", "byo_c_5"]
    assert all(n.op_type != "Constant" for n in model.graph.node) and out == "byo_mul_6"
    np.testing.assert_array_equal(
        _run(model), np.arange(12, dtype=np.float32).reshape(1, 3, 4)[..., 1:3] * 2
    )


def test_list_mode_makes_constant_nodes_and_the_same_values():
    b = NodeBuilder("f/")
    out = b.op("Mul", [b.slice_last("x", 1, 3), b.const(2.0, np.float32)])
    assert sum(n.op_type == "Constant" for n in b.nodes) == 4
    model = _model(list(b.nodes) + [helper.make_node("Identity", [out], ["y"])], [], "y")
    np.testing.assert_array_equal(
        _run(model), np.arange(12, dtype=np.float32).reshape(1, 3, 4)[..., 1:3] * 2
    )
