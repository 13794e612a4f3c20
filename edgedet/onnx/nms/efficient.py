"""NMS as NVIDIA's ``EfficientNMS_TRT`` plugin node (``--nms efficient``): runs in TensorRT only.

    attach_efficient(model, params, raw) -> model with outputs
        num_dets int32 [B, 1], det_boxes float32 [B, K, 4],
        det_scores float32 [B, K], det_classes int32 [B, K]

The plugin (TensorRT OSS ``plugin/efficientNMSPlugin``, README and efficientNMSPlugin.cpp) takes
boxes ``[B, N, 4]`` (one box for all classes) or ``[B, N, C, 4]``, scores ``[B, N, C]`` and optional
anchors ``[1|B, N, 4]`` (fused decode, same coding as ``box_coding``); attributes
``score_threshold``, ``iou_threshold``, ``max_output_boxes``, ``background_class``,
``score_activation``, ``class_agnostic``, ``box_coding``; all float inputs and the box/score outputs
share one type, float32 or float16. It is deprecated since TensorRT 10.12 ("no alternatives
planned"); its deviations from edgedet's NMS specification are listed in docs/nms.md.

What it cannot express is refused (ExportError) rather than silently changed: more than 4096
candidates entering NMS, ``box_scale`` other than 1 with anchors (its decoder has no delta
divisors), and thresholds as run-time inputs (they are attributes, frozen when the engine is built).
"""

from __future__ import annotations

import warnings

import numpy as np

from edgedet import contract
from edgedet.errors import ExportError
from edgedet.nms.params import NMSParams

OP_TYPE = "EfficientNMS_TRT"
# TensorRT's ONNX parser dispatches on op_type and looks an unknown op up in the plugin registry as
# getCreator(op_type, attr plugin_version, attr plugin_namespace), trying the node's domain as the
# namespace only as a fallback (from 10.10), so the domain does not decide the lookup. A custom
# domain keeps onnx.checker passing (unknown ops in the default domain fail it) and is what
# torch.onnx produces for the widely used `g.op("TRT::EfficientNMS_TRT", ...)` exports.
OP_DOMAIN = "TRT"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""  # libnvinfer_plugin registers its creators in the empty namespace
# README: "the highest 4096 scores are processed by the EfficientNMS CUDA kernel". The code sets
# 5000 (2000 on Jetson TX1/TX2) in EfficientNMSPlugin::initialize(); the documented cap is the bound
# edgedet promises.
PRE_NMS_CAP = 4096


def attach_efficient(model, params: NMSParams, raw, runtime_thresholds: bool = False):
    """Append an EfficientNMS_TRT node to ``model`` (modified in place and returned); outputs the
    contract.

    ``raw`` is edgedet.onnx.nms.RawOutputs. Inputs of another float type are cast to float32;
    float16 boxes and scores stay float16 and the float16 outputs are cast to float32 for the
    contract.
    """
    import onnx
    from onnx import helper

    from edgedet.onnx.nms import replace_outputs

    check_expressible(model, params, raw, runtime_thresholds)
    dtype = _element_type(raw.boxes_type, raw.scores_type)
    prefix = "nms/"
    nodes, inputs = [], []
    for name, have in ((raw.boxes, raw.boxes_type), (raw.scores, raw.scores_type)):
        if have != dtype:
            nodes.append(
                helper.make_node(
                    "Cast", [name], [f"{prefix}{name}_cast"], to=dtype, name=f"{prefix}cast_{name}"
                )
            )
            name = f"{prefix}{name}_cast"
        inputs.append(name)
    if raw.anchors is not None:
        np_type = np.float16 if dtype == onnx.TensorProto.FLOAT16 else np.float32
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(raw.anchors.astype(np_type), f"{prefix}anchors")
        )
        inputs.append(f"{prefix}anchors")
    plugin_out = [
        f"{prefix}num_detections",
        f"{prefix}detection_boxes",
        f"{prefix}detection_scores",
        f"{prefix}detection_classes",
    ]
    nodes.append(
        helper.make_node(
            OP_TYPE,
            inputs,
            plugin_out,
            name=f"{prefix}efficient_nms",
            domain=OP_DOMAIN,
            **plugin_attributes(params, raw.c),
        )
    )
    produced = dict(zip(contract.NMS_OUTPUTS, plugin_out))
    if dtype != onnx.TensorProto.FLOAT:  # the contract's det_boxes / det_scores are float32
        for key in (contract.DET_BOXES, contract.DET_SCORES):
            nodes.append(
                helper.make_node(
                    "Cast",
                    [produced[key]],
                    [f"{produced[key]}_f32"],
                    to=onnx.TensorProto.FLOAT,
                    name=f"{prefix}cast_{key}",
                )
            )
            produced[key] = f"{produced[key]}_f32"
    model.graph.node.extend(nodes)
    _declare_plugin_outputs(model, plugin_out, raw, params.max_output_boxes, dtype)
    if not any(o.domain == OP_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(OP_DOMAIN, 1))
    replace_outputs(model, produced, raw, params.max_output_boxes)
    return model


def plugin_attributes(params: NMSParams, num_classes: int) -> dict:
    """The node attributes (README "Parameters"; INT -> int32, FLOAT -> float32 in the parser)."""
    background = params.background_class if 0 <= params.background_class < num_classes else -1
    return {
        "score_threshold": float(params.score_threshold),
        "iou_threshold": float(params.iou_threshold),
        "max_output_boxes": int(params.max_output_boxes),
        "background_class": int(background),
        "score_activation": int(bool(params.score_activation)),
        "class_agnostic": int(bool(params.class_agnostic)),
        "box_coding": int(params.box_coding),
        "plugin_version": PLUGIN_VERSION,
        "plugin_namespace": PLUGIN_NAMESPACE,
    }


def check_expressible(model, params: NMSParams, raw, runtime_thresholds: bool = False) -> None:
    """ExportError for what EfficientNMS_TRT cannot do; a warning where it only differs
    (docs/nms.md)."""
    graph_inputs = {i.name for i in model.graph.input}
    if runtime_thresholds or graph_inputs & set(contract.THRESHOLD_INPUTS):
        raise ExportError(
            f"{OP_TYPE} takes score_threshold and iou_threshold as attributes fixed when the engine"
            " is built; for thresholds set at run time use --nms edgedet"
        )
    total = raw.n * raw.c
    ranked = min(params.top_k or total, total)
    if ranked > PRE_NMS_CAP:
        raise ExportError(
            f"top_k {params.top_k or 'unlimited'} lets {ranked} candidates (N*C = {raw.n}*{raw.c})"
            f" enter NMS; {OP_TYPE} keeps at most {PRE_NMS_CAP} (its documented cap): use --top-k"
            f" {PRE_NMS_CAP} or less, or --nms edgedet / graph"
        )
    if raw.anchors is not None and tuple(params.box_scale) != (1.0, 1.0, 1.0, 1.0):
        raise ExportError(
            f"box_scale {list(params.box_scale)}: {OP_TYPE}'s fused anchor decode has no delta"
            " divisors; use --nms edgedet or graph, or decode the boxes in the model"
        )
    if ranked < min(PRE_NMS_CAP, total):
        warnings.warn(
            f"{OP_TYPE} ranks up to {PRE_NMS_CAP} candidates, not top_k = {params.top_k}: it may"
            " keep boxes edgedet's other NMS implementations drop",
            stacklevel=3,
        )


def _element_type(boxes_type: int, scores_type: int) -> int:
    """float16 when both are float16, else float32 (the plugin wants one type for all float I/O)."""
    import onnx

    half = onnx.TensorProto.FLOAT16
    return half if boxes_type == half and scores_type == half else onnx.TensorProto.FLOAT


def _declare_plugin_outputs(model, names: list[str], raw, k: int, dtype: int) -> None:
    """value_info for the plugin's outputs: ONNX shape inference cannot see into a custom op."""
    import onnx
    from onnx import helper

    b = raw.batch if raw.batch != "?" else "batch"
    types = [onnx.TensorProto.INT32, dtype, dtype, onnx.TensorProto.INT32]
    shapes = [[b, 1], [b, k, 4], [b, k], [b, k]]
    model.graph.value_info.extend(
        helper.make_tensor_value_info(n, t, s) for n, t, s in zip(names, types, shapes)
    )


def tensorrt_only_ops(model) -> list[str]:
    """Nodes ONNX Runtime cannot run because they are TensorRT plugins (for a clear load error)."""
    return sorted(
        {
            f"{n.domain + '::' if n.domain else ''}{n.op_type}"
            for n in model.graph.node
            if n.op_type == OP_TYPE or n.domain == OP_DOMAIN
        }
    )
