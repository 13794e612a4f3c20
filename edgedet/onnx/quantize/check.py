"""Static check of a Q/DQ graph against TensorRT's ONNX parser rules, without TensorRT.

Rules (TensorRT Developer Guide, "Working with Quantized Types" / explicit quantization, and the
ONNX parser's QuantizeLinear/DequantizeLinear importers in onnx-tensorrt):
  R1 scale is a constant (initializer or Constant node)
  R2 scale values are positive and finite
  R3 zero point absent or all zero (TensorRT quantization is symmetric)
  R4 quantized type is INT8 (or FP8 / INT4); UINT8 is not accepted
  R5 per-axis scales only on weights (constant inputs), on axis 0 for Conv and axis 1 for
     ConvTranspose; activations are per-tensor (one scale)
  R6 no DequantizeLinear of an INT32 tensor (quantised bias breaks parsing)
  R7 every QuantizeLinear of an activation is consumed by DequantizeLinear nodes only
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgedet.onnx.graph import GraphIndex

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Violation:
    node: str
    op_type: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}): {self.rule} {self.message}"


def _constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def check_qdq(model) -> list[Violation]:
    """Every violation of R1-R7 in ``model``, each naming its node."""
    consts = _constants(model)
    index = GraphIndex.of(model)
    out: list[Violation] = []
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            out.extend(_check_node(node, consts, index))
    return out


def _check_node(node, consts, index) -> list[Violation]:
    v = []

    def bad(rule, msg):
        v.append(Violation(node.name or node.output[0], node.op_type, rule, msg))

    scale_name = node.input[1] if len(node.input) > 1 else ""
    scale = consts.get(scale_name)
    if scale is None:
        bad("R1", f"scale '{scale_name}' is not a constant")
    elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        bad("R2", f"scale '{scale_name}' has non-positive or non-finite values")
    zp_name = node.input[2] if len(node.input) > 2 else ""
    zp = consts.get(zp_name) if zp_name else None
    if zp_name and zp is None:
        bad("R1", f"zero point '{zp_name}' is not a constant")
    if zp is not None and np.any(zp != 0):
        bad("R3", f"zero point '{zp_name}' is not all zero (asymmetric quantization)")
    qtype = _quantized_dtype(node, zp, consts)
    if qtype is not None and qtype not in ("int8", "float8_e4m3fn", "int4"):
        bad("R4", f"quantized type {qtype} is not supported by TensorRT (use symmetric int8)")
    if node.op_type == "DequantizeLinear" and qtype == "int32":
        bad("R6", "dequantizes an INT32 tensor (quantized bias); quantize with QuantizeBias=False")
    if scale is not None and scale.size > 1:
        v.extend(_check_per_axis(node, index, consts, bad) or [])
    if node.op_type == "QuantizeLinear" and node.input[0] not in consts:
        users = index.consumers.get(node.output[0], [])
        if not users or any(u.op_type != "DequantizeLinear" for u in users):
            bad("R7", "output is not consumed only by DequantizeLinear (TensorRT needs Q/DQ pairs)")
    return v


def _quantized_dtype(node, zp, consts) -> str | None:
    if zp is not None:
        return zp.dtype.name
    if node.op_type == "DequantizeLinear" and node.input[0] in consts:
        return consts[node.input[0]].dtype.name
    if node.op_type == "QuantizeLinear":
        to = next((a.i for a in node.attribute if a.name == "output_dtype"), 0)
        return None if to else "uint8"  # ONNX default without zero point / output_dtype is uint8
    return None


def _check_per_axis(node, index, consts, bad) -> None:
    """Per-axis scales: weights only, on the axis TensorRT expects for the consuming layer."""
    is_weight = node.input[0] in consts or _fed_by_constant_q(node, index, consts)
    if not is_weight:
        bad(
            "R5",
            "per-axis scale on an activation; TensorRT takes per-tensor activation scales only",
        )
        return
    axis = _axis(node)
    for user in index.consumers.get(node.output[0], []):
        want = {"Conv": 0, "ConvTranspose": 1}.get(user.op_type)
        if want is not None and axis != want:
            bad(
                "R5",
                f"per-axis weight scale on axis {axis}; {user.op_type} '{user.name}' needs axis"
                f" {want}",
            )


def _fed_by_constant_q(node, index, consts) -> bool:
    prod = index.producer.get(node.input[0])
    return prod is not None and prod.op_type == "QuantizeLinear" and prod.input[0] in consts
