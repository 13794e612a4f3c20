"""Append NMS to an ONNX graph with raw ``boxes`` / ``scores`` outputs, producing the contract outputs.

Implementations sit in a registry (name -> function(model, params, ...) -> model):
  graph  standard ONNX ops only (exporters/nms/graph.py); any ONNX runtime runs it
  none   leave the raw outputs (NMS on the host)
The EdgeDetNMS custom op (with a standard-ops local function) and EfficientNMS_TRT register here too.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgedet import contract
from edgedet.errors import ExportError, InputError
from edgedet.nms.params import NMSParams

IMPLEMENTATIONS: dict[str, Callable] = {}
OUTPUT_TYPES = {contract.NUM_DETS: "int32", contract.DET_BOXES: "float32",
                contract.DET_SCORES: "float32", contract.DET_CLASSES: "int32"}


def register(name: str):
    def deco(fn):
        IMPLEMENTATIONS[name] = fn
        return fn

    return deco


def attach_nms(model, params: NMSParams, implementation: str = "graph", boxes: str = contract.RAW_BOXES,
               scores: str = contract.RAW_SCORES, anchors: np.ndarray | None = None):
    """Return a copy of ``model`` whose outputs are num_dets, det_boxes, det_scores, det_classes.

    ``boxes`` [B,N,4] or [B,N,C,4] and ``scores`` [B,N,C] must be graph outputs with static N, C;
    ``anchors`` [N,4] (or [1,N,4]) makes ``boxes`` anchor deltas decoded inside the NMS.
    """
    if implementation not in IMPLEMENTATIONS:
        raise InputError(f"unknown NMS implementation '{implementation}'; choose one of {', '.join(IMPLEMENTATIONS)}")
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    return IMPLEMENTATIONS[implementation](out, params, boxes, scores, anchors)


@register("none")
def _none(model, params, boxes, scores, anchors):
    if anchors is not None:
        raise ExportError("this model decodes its boxes inside the NMS (anchors); --nms none needs the family's "
                          "decode-in-graph variant")
    return model


def raw_shapes(model, boxes: str, scores: str) -> tuple[list, list]:
    """Static shapes of the raw outputs: ([B,N,4]|[B,N,C,4], [B,N,C]); ExportError when N or C is dynamic."""
    from exporters.onnx_tools import io_specs

    outputs = {s.name: list(s.shape) for s in io_specs(model)[1]}
    for name in (boxes, scores):
        if name not in outputs:
            raise ExportError(f"the graph has no '{name}' output to attach NMS to (outputs: {sorted(outputs)})")
    bshape, sshape = outputs[boxes], outputs[scores]
    if len(sshape) != 3 or sshape[1] < 0 or sshape[2] < 0:
        raise ExportError(f"'{scores}' has shape {sshape}; NMS in the graph needs [B, N, C] with static N and C")
    if bshape[1:] not in ([sshape[1], 4], [sshape[1], sshape[2], 4]):
        raise ExportError(f"'{boxes}' has shape {bshape}; with '{scores}' {sshape} it must be [B, N, 4] or [B, N, C, 4]")
    return bshape, sshape


def replace_outputs(model, produced: dict[str, str], batch_dim, k: int, drop: tuple[str, ...]) -> None:
    """Swap the raw outputs for the contract outputs (Identity-renamed from ``produced``)."""
    import onnx
    from onnx import helper

    for name in contract.NMS_OUTPUTS:
        model.graph.node.append(helper.make_node("Identity", [produced[name]], [name], name=f"nms/{name}"))
    keep = [o for o in model.graph.output if o.name not in drop]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    shapes = {contract.NUM_DETS: [batch_dim, 1], contract.DET_BOXES: [batch_dim, k, 4],
              contract.DET_SCORES: [batch_dim, k], contract.DET_CLASSES: [batch_dim, k]}
    for name in contract.NMS_OUTPUTS:
        dtype = onnx.TensorProto.INT32 if OUTPUT_TYPES[name] == "int32" else onnx.TensorProto.FLOAT
        model.graph.output.append(helper.make_tensor_value_info(name, dtype, shapes[name]))


def batch_dim(model, tensor: str):
    """The batch dimension of a graph output: an int, or its symbolic name."""
    for o in model.graph.output:
        if o.name == tensor:
            d = o.type.tensor_type.shape.dim[0]
            return d.dim_value if d.HasField("dim_value") else (d.dim_param or "batch")
    return "batch"


@register("graph")
def _graph(model, params: NMSParams, boxes: str, scores: str, anchors):
    from exporters.nms.builder import NodeBuilder
    from exporters.nms.graph import build_nms
    from exporters.onnx_tools import opset_of

    if opset_of(model) < 13:
        raise ExportError(f"NMS in the graph needs opset >= 13; the model is opset {opset_of(model)}")
    bshape, sshape = raw_shapes(model, boxes, scores)
    b = NodeBuilder("nms/")
    anchors_name = _anchors(b, anchors, sshape[1])
    try:
        out = build_nms(b, boxes, scores, params, sshape[1], sshape[2], len(bshape) == 4, anchors_name)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    model.graph.node.extend(b.nodes)
    replace_outputs(model, out, batch_dim(model, scores), params.max_output_boxes, (boxes, scores))
    return model


def _anchors(b, anchors, n: int) -> str | None:
    if anchors is None:
        return None
    a = np.asarray(anchors, np.float32).reshape(-1, 4)
    if a.shape[0] != n:
        raise ExportError(f"{a.shape[0]} anchors for {n} candidates")
    return b.const(a[None], np.float32, hint="anchors")
