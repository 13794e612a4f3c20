"""FP32 ONNX -> FP16 ONNX for strongly typed TensorRT builds, and Q/DQ graphs -> INT8 + FP16.

I/O stays FP32 (the contract), and so do the nodes of the detection placement (NMS,
decode, last head convs) plus ONNX Runtime's default block list (TopK,
NonMaxSuppression, RoiAlign, Range, CumSum, Min/Max, Upsample, ...). Casts are inserted
at every FP16/FP32 boundary by ONNX Runtime's converter.

A strongly typed TensorRT network takes each layer's precision from its tensor types (TensorRT
Developer Guide, "Strongly Typed Networks"): an FP32 tensor between Q/DQ pairs runs in FP32. So a
mixed INT8/FP16 graph is an FP16 graph whose Q/DQ pairs carry FP16 scales (DequantizeLinear's
output type is its scale's type), which ONNX allows from opset 19 (QuantizeLinear-19 /
DequantizeLinear-19 take float16 scales).
"""

from __future__ import annotations

from edgedet.errors import InputError, ModelError, first_line
from edgedet.onnx.quantize.placement import Placement

QDQ_FP16_OPSET = 19


def to_fp16(model, placement: Placement):
    """Return an FP16 copy of ``model`` (ModelProto) with ``placement`` kept in FP32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        raise InputError("the model already holds FP16 weights; quantise the FP32 export instead")
    from edgedet.onnx.graph import toposort

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    # The converter decides where Casts go from value_info types: stale or missing ones leave FP16
    # tensors flowing into FP32 nodes. Re-infer them (unknown custom ops are skipped, not fatal).
    del copy.graph.value_info[:]
    copy = onnx.shape_inference.infer_shapes(copy)
    result = convert_float_to_float16(
        copy,
        keep_io_types=True,
        op_block_list=list(DEFAULT_OP_BLOCK_LIST),
        node_block_list=placement.names,
        disable_shape_infer=True,
    )
    drop_roundtrip_casts(result)
    toposort(result)  # the converter appends its Cast nodes at the end of the node list
    return result


def to_mixed(qmodel, placement: Placement):
    """A Q/DQ graph with every float tensor outside ``placement`` in FP16 and FP16 Q/DQ scales:
    INT8 where Q/DQ pairs sit, FP16 elsewhere, FP32 in the placement (NMS, decode, last convs)."""
    return to_fp16(at_least_opset(qmodel, QDQ_FP16_OPSET), placement)


def at_least_opset(model, version: int):
    """``model`` converted to ``version`` of the default ONNX domain if it is older (custom domains
    kept)."""
    import onnx
    from onnx import version_converter

    from edgedet.onnx.tools import opset_of

    current = opset_of(model)
    if current >= version:
        return model
    try:
        converted = version_converter.convert_version(model, version)
    except Exception as exc:  # noqa: BLE001 - the converter raises plain RuntimeErrors naming the op without an adapter
        raise ModelError(
            f"cannot raise the graph from opset {current} to {version}, which FP16 Q/DQ scales need"
            f" ({first_line(exc)}); re-export with --opset {version}, or pass"
            " --fallback fp32"
        ) from None
    # The converter drops model-local functions (EdgeDetNMS's standard-op body, which ONNX Runtime
    # runs; TensorRT maps the node to edgedet's plugin): carry them over, importing the new version.
    del converted.functions[:]
    for function in model.functions:
        converted.functions.append(_function_at(function, version))
    onnx.checker.check_model(converted)
    return converted


# Ops whose opset 18 version turned an attribute into an input (axes): a function body using them
# cannot just import a newer opset. Every other change from opset 13 to 19 adds types, optional
# inputs or attributes whose defaults keep the old behaviour (onnx/docs/Changelog.md).
_NOT_FORWARD_COMPATIBLE = {
    "ReduceMax",
    "ReduceMin",
    "ReduceMean",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
}


def _function_at(function, version: int):
    import onnx

    out = onnx.FunctionProto()
    out.CopyFrom(function)
    for imp in out.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version < version:
            bad = sorted(
                {n.op_type for n in out.node if n.domain in ("", "ai.onnx")}
                & _NOT_FORWARD_COMPATIBLE
            )
            if bad and imp.version < 18:
                raise ModelError(
                    f"function {out.domain}:{out.name} uses {', '.join(bad)} at opset"
                    f" {imp.version}, which changed in opset 18; re-export with --opset {version},"
                    " or pass --fallback fp32"
                )
            imp.version = version
    return out


def drop_roundtrip_casts(model) -> int:
    """FP32 -> Cast(FP16) -> Cast(FP32) chains become Identity of the FP32 tensor.

    ONNX Runtime's converter writes such a pair between two FP32-kept nodes (each side casts at its
    own boundary), which rounds a tensor of the FP32 head to FP16 for nothing. Returns the count.
    """
    import onnx

    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    types = _elem_types(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    dropped = 0
    for node in model.graph.node:
        if node.op_type != "Cast" or _cast_to(node) != fp32:
            continue
        first = producer.get(node.input[0])
        if (
            first is None
            or first.op_type != "Cast"
            or _cast_to(first) != fp16
            or types.get(first.input[0]) != fp32
        ):
            continue
        node.op_type = "Identity"
        del node.attribute[:]
        node.input[0] = first.input[0]
        dropped += 1
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for node in [n for n in model.graph.node if n.op_type == "Cast" and n.output[0] not in used]:
        model.graph.node.remove(node)
    return dropped


def _cast_to(node) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _elem_types(model) -> dict[str, int]:
    import onnx

    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.input}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.value_info})
    for node in model.graph.node:  # the converter's own Casts may lack value_info
        if node.op_type == "Cast":
            types.setdefault(node.output[0], _cast_to(node) or onnx.TensorProto.UNDEFINED)
    return types
