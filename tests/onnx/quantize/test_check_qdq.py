"""Each TensorRT Q/DQ rule, violated on purpose in a small hand-built graph, is named."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgedet.onnx.quantize.check import check_qdq


def graph(nodes, inits, inputs=("x",)):
    ins = [helper.make_tensor_value_info(i, TensorProto.FLOAT, [1, 4, 8, 8]) for i in inputs]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    g = helper.make_graph(
        nodes, "g", ins, out, [numpy_helper.from_array(v, k) for k, v in inits.items()]
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def good_conv(**over):
    """x -> Q/DQ (per-tensor) -> Conv(w DQ per-channel axis 0) -> y."""
    inits = {
        "s": np.array(0.1, np.float32),
        "z": np.array(0, np.int8),
        "wq": np.ones((4, 4, 3, 3), np.int8),
        "ws": np.full(4, 0.01, np.float32),
        "wz": np.zeros(4, np.int8),
    }
    inits.update(over.pop("inits", {}))
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_x"),
        helper.make_node(
            "DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq_w", axis=over.pop("axis", 0)
        ),
        helper.make_node(over.pop("conv", "Conv"), ["xd", "w"], ["y"], name="conv"),
    ]
    return graph(nodes, inits)


def rules(model):
    return {(v.node, v.rule) for v in check_qdq(model)}


def test_good_graph_passes():
    assert check_qdq(good_conv()) == []


def test_r2_negative_scale():
    assert ("q_x", "R2") in rules(good_conv(inits={"s": np.array(-0.1, np.float32)}))


def test_r3_asymmetric_zero_point():
    assert ("dq_x", "R3") in rules(good_conv(inits={"z": np.array(3, np.int8)}))


def test_r4_uint8():
    assert ("q_x", "R4") in rules(good_conv(inits={"z": np.array(0, np.uint8)}))


def test_r5_wrong_weight_axis_and_per_axis_activation():
    assert ("dq_w", "R5") in rules(good_conv(axis=1))
    assert ("dq_w", "R5") not in rules(good_conv(axis=1, conv="ConvTranspose"))
    m = good_conv(inits={"s": np.full(4, 0.1, np.float32), "z": np.zeros(4, np.int8)})
    assert ("q_x", "R5") in rules(m)


def test_r1_non_constant_scale():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_dyn", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s_dyn", "z"], ["y"], name="dq"),
    ]
    m = graph(nodes, {"z": np.array(0, np.int8)}, inputs=("x", "s_dyn"))
    assert {("q", "R1"), ("dq", "R1")} <= rules(m)


def test_r6_int32_bias_dequantize():
    nodes = [
        helper.make_node("DequantizeLinear", ["b", "bs"], ["bias"], name="dq_bias"),
        helper.make_node("Add", ["x", "bias"], ["y"]),
    ]
    m = graph(nodes, {"b": np.ones(1, np.int32), "bs": np.array(0.1, np.float32)})
    assert ("dq_bias", "R6") in rules(m)


def test_r7_quantize_without_dequantize():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="lonely_q"),
        helper.make_node("Cast", ["xq"], ["y"], to=TensorProto.FLOAT),
    ]
    m = graph(nodes, {"s": np.array(0.1, np.float32), "z": np.array(0, np.int8)})
    assert ("lonely_q", "R7") in rules(m)


def test_cli_names_violations(tmp_path):
    from click.testing import CliRunner

    from edgedet.cli.main import cli

    bad = tmp_path / "bad.onnx"
    onnx.save(good_conv(inits={"z": np.array(3, np.int8)}), bad)
    r = CliRunner().invoke(cli, ["check-qdq", str(bad)])
    assert r.exit_code == 1 and "dq_x (DequantizeLinear): R3" in r.output
    good = tmp_path / "good.onnx"
    onnx.save(good_conv(), good)
    r = CliRunner().invoke(cli, ["check-qdq", str(good)])
    assert r.exit_code == 0 and "3 Q/DQ nodes" in r.output


def test_concat_scale_unification():
    from edgedet.onnx.quantize.passes import unify_concat_scales

    nodes = []
    inits = {"z": np.array(0, np.int8)}
    for i, s in enumerate((0.1, 0.4)):
        inits[f"s{i}"] = np.array(s, np.float32)
        nodes += [
            helper.make_node("QuantizeLinear", [f"x{i}", f"s{i}", "z"], [f"q{i}"]),
            helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}", "z"], [f"d{i}"]),
        ]
    nodes.append(helper.make_node("Concat", ["d0", "d1"], ["y"], axis=1))
    m = graph(nodes, inits, inputs=("x0", "x1"))
    assert unify_concat_scales(m) == 1
    scales = {
        i.name: float(numpy_helper.to_array(i))
        for i in m.graph.initializer
        if i.name.startswith("s")
    }
    assert scales == {"s0": pytest.approx(0.4), "s1": pytest.approx(0.4)}
    assert unify_concat_scales(m) == 0
