"""Append NMS to an ONNX graph whose outputs include raw ``boxes`` / ``scores``, producing the
contract.

    attach_nms(model, params, implementation="graph") -> model with outputs
        num_dets int32 [B, 1], det_boxes float32 [B, K, 4],
        det_scores float32 [B, K], det_classes int32 [B, K]

Implementations sit in a registry (name -> builder(model, params, raw, **options) -> model):
  edgedet    one EdgeDetNMS custom node (the TensorRT plugin's op) carrying a model-local function
             built from the same standard ops as ``graph`` (edgedet/onnx/nms/edgedet_op.py): ONNX
             Runtime runs the function, TensorRT the plugin; optional run-time threshold inputs
  graph      standard ONNX ops only (edgedet/onnx/nms/body.py); any ONNX runtime runs it
  efficient  NVIDIA's EfficientNMS_TRT node (edgedet/onnx/nms/efficient.py); TensorRT only
  none       leave the raw outputs (NMS on the host, edgedet.nms.host)
Semantics: docs/nms.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgedet import contract
from edgedet.errors import ExportError, InputError
from edgedet.nms.params import NMSParams

IMPLEMENTATIONS: dict[str, Callable] = {}
MIN_OPSET = 13  # Unsqueeze/ReduceSum/Pad with tensor inputs, GatherND batch_dims


def register(name: str):
    """Decorator: make ``fn(model, params, raw: RawOutputs) -> model`` the implementation
    ``name``."""

    def deco(fn):
        IMPLEMENTATIONS[name] = fn
        return fn

    return deco


@dataclass(frozen=True)
class RawOutputs:
    """The raw outputs NMS consumes: names, static N and C, batch dim (int or symbol), layout."""

    boxes: str
    scores: str
    n: int
    c: int
    batch: int | str
    per_class: bool  # boxes [B, N, C, 4]
    boxes_type: int  # onnx.TensorProto element type
    scores_type: int
    anchors: np.ndarray | None  # [1, N, 4] float32: boxes are deltas decoded inside the NMS


def attach_nms(
    model,
    params: NMSParams,
    implementation: str = "edgedet",
    boxes: str = contract.RAW_BOXES,
    scores: str = contract.RAW_SCORES,
    anchors: np.ndarray | None = None,
    runtime_thresholds: bool = False,
):
    """Return a copy of ``model`` whose outputs are exactly num_dets, det_boxes, det_scores,
    det_classes.

    ``boxes`` [B, N, 4] or [B, N, C, 4] and ``scores`` [B, N, C] must be graph outputs with static
    N and C (B may be symbolic); they stop being outputs. ``anchors`` [N, 4] or [1, N, 4] makes
    ``boxes`` anchor deltas, decoded inside the NMS as params.box_coding says. Implementation
    ``none`` returns the model unchanged. ``runtime_thresholds`` (``edgedet`` only) adds the graph
    inputs score_threshold / iou_threshold (float32 [1]) so thresholds change without re-export.
    """
    if implementation not in IMPLEMENTATIONS:
        raise InputError(
            f"unknown NMS implementation '{implementation}'; choose one of"
            f" {', '.join(IMPLEMENTATIONS)}"
        )
    if not isinstance(params, NMSParams):
        raise InputError(f"attach_nms needs NMSParams, got {type(params).__name__}")
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    if implementation == "none":
        if anchors is not None:
            raise ExportError(
                "this model decodes its boxes inside the NMS (anchors); --nms none needs the"
                " family's decode-in-graph variant"
            )
        return IMPLEMENTATIONS["none"](out, params, None)
    if runtime_thresholds and implementation != "edgedet":
        raise InputError(f"run-time NMS thresholds need --nms edgedet (not {implementation})")
    options = {"runtime_thresholds": True} if runtime_thresholds else {}
    return IMPLEMENTATIONS[implementation](
        out, params, raw_outputs(out, boxes, scores, anchors), **options
    )


def raw_outputs(model, boxes: str, scores: str, anchors: np.ndarray | None = None) -> RawOutputs:
    """Find and check the raw outputs; ExportError naming the tensor when a shape or dtype is
    unusable."""
    from edgedet.onnx.tools import opset_of

    if opset_of(model) < MIN_OPSET:
        raise ExportError(
            f"NMS in the graph needs opset >= {MIN_OPSET}; the model is opset {opset_of(model)} "
            "(upgrade it: edgedet.onnx.byo.attach.upgrade_opset)"
        )
    outputs = {o.name: o.type.tensor_type for o in model.graph.output}
    for name in (boxes, scores):
        if name not in outputs:
            raise ExportError(
                f"the graph has no '{name}' output to attach NMS to (outputs: {sorted(outputs)})"
            )
    taken = sorted(set(contract.NMS_OUTPUTS) & set(outputs))
    if taken:
        raise ExportError(f"the graph already has NMS outputs {taken}; attach NMS to the raw model")
    bshape, sshape = (_dims(outputs[name]) for name in (boxes, scores))
    if len(sshape) != 3 or not all(isinstance(d, int) and d > 0 for d in sshape[1:]):
        raise ExportError(
            f"'{scores}' has shape {sshape}; NMS in the graph needs [B, N, C] with static N, C >= 1"
        )
    n, c = sshape[1], sshape[2]
    if bshape[1:] not in ([n, 4], [n, c, 4]):
        raise ExportError(
            f"'{boxes}' has shape {bshape}; with '{scores}' {sshape} it must be [B, {n}, 4] or [B,"
            f" {n}, {c}, 4]"
        )
    return RawOutputs(
        boxes,
        scores,
        n,
        c,
        sshape[0],
        len(bshape) == 4,
        outputs[boxes].elem_type,
        outputs[scores].elem_type,
        _anchors(anchors, n),
    )


def _dims(tensor_type) -> list:
    """Shape of a graph output: ints for static dims, the symbol (or '?') for dynamic ones."""
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in tensor_type.shape.dim
    ]


def _anchors(anchors, n: int) -> np.ndarray | None:
    if anchors is None:
        return None
    a = np.asarray(anchors, np.float32)
    if a.shape not in ((n, 4), (1, n, 4)):
        raise ExportError(
            f"anchors have shape {a.shape}; expected [{n}, 4] or [1, {n}, 4] for {n} candidates"
        )
    return a.reshape(1, n, 4)


def replace_outputs(model, produced: dict[str, str], raw: RawOutputs, k: int) -> None:
    """Drop the raw outputs; add the four contract outputs (Identity-renamed from ``produced``)."""
    from onnx import helper

    for name in contract.NMS_OUTPUTS:
        model.graph.node.append(
            helper.make_node("Identity", [produced[name]], [name], name=f"nms/{name}")
        )
    keep = [o for o in model.graph.output if o.name not in (raw.boxes, raw.scores)]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    model.graph.output.extend(contract_output_infos(raw.batch, k))


def contract_output_infos(batch, k: int) -> list:
    """ValueInfos of the four contract outputs for batch ``batch`` ("?": dynamic) and K = ``k``."""
    import onnx
    from onnx import helper

    b = batch if batch != "?" else "batch"
    shapes = {
        contract.NUM_DETS: [b, 1],
        contract.DET_BOXES: [b, k, 4],
        contract.DET_SCORES: [b, k],
        contract.DET_CLASSES: [b, k],
    }
    infos = []
    for name in contract.NMS_OUTPUTS:
        dtype = (
            onnx.TensorProto.INT32
            if contract.OUTPUT_DTYPES[name] == np.int32
            else onnx.TensorProto.FLOAT
        )
        infos.append(helper.make_tensor_value_info(name, dtype, shapes[name]))
    return infos


@register("edgedet")
def _edgedet(model, params: NMSParams, raw: RawOutputs, runtime_thresholds: bool = False):
    from edgedet.onnx.nms.edgedet_op import attach

    return attach(model, params, raw, runtime_thresholds)


@register("graph")
def _graph(model, params: NMSParams, raw: RawOutputs):
    from edgedet.onnx.builder import NodeBuilder
    from edgedet.onnx.nms.body import build_nms

    b = NodeBuilder("nms/")
    boxes, scores = b.as_float(raw.boxes, raw.boxes_type), b.as_float(raw.scores, raw.scores_type)
    anchors = b.const(raw.anchors, np.float32, hint="anchors") if raw.anchors is not None else None
    try:
        out = build_nms(b, boxes, scores, params, raw.n, raw.c, raw.per_class, anchors)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    model.graph.node.extend(b.nodes)
    replace_outputs(model, out, raw, params.max_output_boxes)
    return model


@register("efficient")
def _efficient(model, params: NMSParams, raw: RawOutputs):
    from edgedet.onnx.nms.efficient import attach_efficient

    return attach_efficient(model, params, raw)


@register("none")
def _none(model, params: NMSParams, raw):
    return model
