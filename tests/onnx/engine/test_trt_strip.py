"""Stripping the EdgeDetNMS local function, on a small generated model with a custom-domain node."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgedet.nms import opdef
from edgedet.onnx.engine.strip import inspect_nms, strip_nms_function


def model_with_local_function(
    namespace=opdef.PLUGIN_NAMESPACE, version=opdef.PLUGIN_VERSION, name="nms0"
):
    """x [1, 4] -> EdgeDetNMS (body: Relu then Mul by 2) -> y; plus an ordinary node after it."""
    two = helper.make_node(
        "Constant", [], ["two"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [2.0])
    )
    body = [
        helper.make_node("Relu", ["x"], ["r"]),
        two,
        helper.make_node("Mul", ["r", "two"], ["y"]),
    ]
    fn = helper.make_function(
        opdef.OP_DOMAIN,
        opdef.OP_TYPE,
        ["x"],
        ["y"],
        body,
        [helper.make_opsetid("", 17)],
        attributes=["plugin_version", "plugin_namespace"],
    )
    node = helper.make_node(
        opdef.OP_TYPE,
        ["x"],
        ["y"],
        name=name,
        domain=opdef.OP_DOMAIN,
        plugin_version=version,
        plugin_namespace=namespace,
    )
    graph = helper.make_graph(
        [node, helper.make_node("Neg", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(
        graph,
        functions=[fn],
        ir_version=9,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(opdef.OP_DOMAIN, 1)],
    )


def test_original_runs_its_function_body_in_onnx_runtime():
    ort = pytest.importorskip("onnxruntime")
    m = model_with_local_function()
    onnx.checker.check_model(m, full_check=True)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    (z,) = sess.run(None, {"x": np.array([[-1, 0, 1, 2]], np.float32)})
    np.testing.assert_array_equal(z, [[0, 0, -2, -4]])


def test_strip_keeps_node_and_domain_drops_function():
    m = model_with_local_function()
    out, removed = strip_nms_function(m)
    assert removed and len(m.functions) == 1  # the input model is untouched
    assert not out.functions
    assert [n.op_type for n in out.graph.node] == [opdef.OP_TYPE, "Neg"]
    assert out.graph.node[0].domain == opdef.OP_DOMAIN
    assert {o.domain for o in out.opset_import} == {"", opdef.OP_DOMAIN}
    # a custom-domain node without a schema passes the structural check
    onnx.checker.check_model(out)
    assert inspect_nms(out).nodes == ("nms0",) and not inspect_nms(out).has_function


def test_strip_is_a_no_op_without_the_function():
    m = model_with_local_function()
    del m.functions[:]
    out, removed = strip_nms_function(m)
    assert not removed and out == m


def test_other_functions_survive():
    m = model_with_local_function()
    other = helper.make_function(
        "custom",
        "Other",
        ["a"],
        ["b"],
        [helper.make_node("Identity", ["a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    m.functions.append(other)
    out, _ = strip_nms_function(m)
    assert [(f.domain, f.name) for f in out.functions] == [("custom", "Other")]


def test_inspect_reports_attributes_the_parser_needs():
    info = inspect_nms(model_with_local_function())
    assert info.nodes == ("nms0",) and info.has_function and info.attribute_problems == ()
    bad = inspect_nms(model_with_local_function(namespace="", version="2", name=""))
    assert bad.nodes == ("#0",)
    assert any("plugin_namespace is ''" in p for p in bad.attribute_problems)
    assert any("plugin_version is '2'" in p for p in bad.attribute_problems)
