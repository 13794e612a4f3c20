"""The EdgeDetNMS custom op in ONNX: one node per NMS plus one model-local function that any ONNX
runtime runs.

    node      edgedet::EdgeDetNMS(boxes, scores[, anchors][, score_threshold[, iou_threshold]])
                  -> num_dets int32 [B,1], det_boxes T [B,K,4], det_scores T [B,K], det_classes
                  int32 [B,K]
              attributes: the NMSParams fields + plugin_version / plugin_namespace + has_anchors /
              threshold_inputs (which optional inputs follow, edgedet/nms/opdef.py); inputs are
              contiguous, T = the type of ``scores`` (float or float16); NMS computes in float32.
    function  edgedet::EdgeDetNMS, the body built by edgedet.onnx.nms.body in its dynamic form:
              every parameter is read from the calling node's attributes (Constant nodes with
              attribute references), sizes from the input shapes, so one body serves every node of a
              model (R-CNN has two, with different parameters and box layouts).

TensorRT 10.7+ prefers a registered plugin of the same name over the local function; for 10.3-10.6
the builder strips the function (edgedet/onnx/engine/strip.py). The function's formal inputs are
exactly the inputs the model's nodes pass (TensorRT's local-function importer requires as many node
inputs as formal inputs, and looks every formal input up by name), so all EdgeDetNMS nodes of one
model must agree on which optional inputs they use. Nodes written before the role attributes existed
(positional inputs with "" gaps) are rewritten to the contiguous form by add_function_bodies.
"""

from __future__ import annotations

from edgedet import contract
from edgedet.errors import ExportError
from edgedet.nms import opdef
from edgedet.nms.params import NMSParams
from edgedet.onnx.builder import NodeBuilder
from edgedet.onnx.nms.body import Knobs, build_nms

MIN_OPSET = 15  # CastLike (outputs take the scores' type)
FORMAL_INPUTS = ("boxes", "scores", "anchors", "score_threshold", "iou_threshold")
OUTPUTS = contract.NMS_OUTPUTS  # num_dets, det_boxes, det_scores, det_classes

# attribute name -> (AttributeProto type name, Constant field, default from NMSParams)
_DEFAULTS = NMSParams()
ATTRIBUTES = {
    "score_threshold": ("FLOAT", "value_float", _DEFAULTS.score_threshold),
    "iou_threshold": ("FLOAT", "value_float", _DEFAULTS.iou_threshold),
    "max_output_boxes": ("INT", "value_int", _DEFAULTS.max_output_boxes),
    "top_k": ("INT", "value_int", _DEFAULTS.top_k),
    "background_class": ("INT", "value_int", _DEFAULTS.background_class),
    "score_activation": ("INT", "value_int", int(_DEFAULTS.score_activation)),
    "class_agnostic": ("INT", "value_int", int(_DEFAULTS.class_agnostic)),
    "box_coding": ("INT", "value_int", _DEFAULTS.box_coding),
    "box_scale": ("FLOATS", "value_floats", list(_DEFAULTS.box_scale)),
}
PLUGIN_ATTRIBUTES = {
    "plugin_version": opdef.PLUGIN_VERSION,
    "plugin_namespace": opdef.PLUGIN_NAMESPACE,
}


def node_attributes(params: NMSParams) -> dict:
    """NMSParams -> EdgeDetNMS node attributes (ints for the flags, as the plugin's fields)."""
    values = {name: getattr(params, name) for name in ATTRIBUTES}
    values = {
        k: list(v) if k == "box_scale" else int(v) if isinstance(v, bool) else v
        for k, v in values.items()
    }
    return {**values, **PLUGIN_ATTRIBUTES}


def params_from_node(node) -> NMSParams:
    """The NMSParams an EdgeDetNMS node carries (missing attributes take the defaults)."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    values = {name: attrs.get(name, default) for name, (_, _, default) in ATTRIBUTES.items()}
    for flag in ("score_activation", "class_agnostic"):
        values[flag] = bool(values[flag])
    return NMSParams(**values)


def compact_inputs(inputs: list[str]) -> tuple[list[str], tuple[int, int]]:
    """Positional inputs (as FORMAL_INPUTS, "" for an absent optional one) -> the contiguous node
    inputs and their roles (has_anchors, threshold_inputs). ExportError for iou_threshold without
    score_threshold.
    """
    inputs = list(inputs) + [""] * (len(FORMAL_INPUTS) - len(inputs))
    if len(inputs) != len(FORMAL_INPUTS) or "" in inputs[:2]:
        raise ExportError(
            f"an EdgeDetNMS node takes boxes, scores and up to three optional inputs; got {inputs}"
        )
    if inputs[4] and not inputs[3]:
        raise ExportError(
            "an EdgeDetNMS node with an iou_threshold input needs a score_threshold input too"
        )
    roles = (int(bool(inputs[2])), int(bool(inputs[3])) + int(bool(inputs[4])))
    return [x for x in inputs if x], roles


def formal_inputs(roles: tuple[int, int]) -> list[str]:
    """The formal inputs of the local function for nodes with ``roles`` (has_anchors,
    threshold_inputs)."""
    return ["boxes", "scores", *(["anchors"] if roles[0] else []), *FORMAL_INPUTS[3 : 3 + roles[1]]]


def make_node(inputs: list[str], outputs: list[str], params: NMSParams, name: str):
    """One EdgeDetNMS node; ``inputs`` positional as FORMAL_INPUTS ("" for an absent optional
    input).
    The node gets the present inputs only, in order, and attributes naming their roles."""
    from onnx import helper

    inputs, (anchors, thresholds) = compact_inputs(inputs)
    return helper.make_node(
        opdef.OP_TYPE,
        inputs,
        outputs,
        name=name,
        domain=opdef.OP_DOMAIN,
        **node_attributes(params),
        **{opdef.HAS_ANCHORS: anchors, opdef.THRESHOLD_INPUTS: thresholds},
    )


def node_roles(node) -> tuple[int, int]:
    """(has_anchors, threshold_inputs) of an EdgeDetNMS node. A node without the role attributes
    (the older positional form, with "" gaps) is rewritten in place to the contiguous form with the
    attributes.
    """
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if opdef.HAS_ANCHORS in attrs and opdef.THRESHOLD_INPUTS in attrs:
        roles = (int(attrs[opdef.HAS_ANCHORS]), int(attrs[opdef.THRESHOLD_INPUTS]))
        if (
            roles[0] not in (0, 1)
            or roles[1] not in (0, 1, 2)
            or len(node.input) != 2 + sum(roles)
            or "" in node.input
        ):
            raise ExportError(
                f"EdgeDetNMS node '{node.name}' has {len(node.input)} inputs {list(node.input)} but"
                f" {opdef.HAS_ANCHORS}={roles[0]}, {opdef.THRESHOLD_INPUTS}={roles[1]}"
            )
        return roles
    inputs, roles = compact_inputs(list(node.input))
    del node.input[:]
    node.input.extend(inputs)
    node.attribute.extend(
        [
            helper.make_attribute(opdef.HAS_ANCHORS, roles[0]),
            helper.make_attribute(opdef.THRESHOLD_INPUTS, roles[1]),
        ]
    )
    return roles


def function_body(roles: tuple[int, int], opset: int):
    """The local function for nodes whose optional inputs are ``roles`` = (has_anchors,
    threshold_inputs)."""
    from onnx import AttributeProto, helper

    b = NodeBuilder("edgedet_nms/")

    def attr(name: str) -> str:
        kind, field, _ = ATTRIBUTES[name]
        out = b.name(name)
        node = helper.make_node("Constant", [], [out], name=out)
        node.attribute.append(
            AttributeProto(name=field, ref_attr_name=name, type=getattr(AttributeProto, kind))
        )
        b.nodes.append(node)
        # Cast pins the dtype: onnxslim folds a value_float Constant into a float64 initializer
        return b.op("Cast", [out], hint=name, to=1) if kind.startswith("FLOAT") else out

    knobs = Knobs(**{name: attr(name) for name in ATTRIBUTES})
    boxes, scores = (b.op("Cast", [x], hint=x, to=1) for x in ("boxes", "scores"))
    anchors = b.op("Cast", ["anchors"], to=1) if roles[0] else None
    out = build_nms(
        b,
        boxes,
        scores,
        knobs,
        anchors=anchors,
        score_threshold="score_threshold" if roles[1] >= 1 else None,
        iou_threshold="iou_threshold" if roles[1] == 2 else None,
        indices=False,
    )
    for name in OUTPUTS:
        value = (
            out[name]
            if name in (contract.NUM_DETS, contract.DET_CLASSES)
            else b.op("CastLike", [out[name], "scores"])
        )
        b.nodes.append(helper.make_node("Identity", [value], [name], name=f"edgedet_nms/{name}"))
    defaults = [helper.make_attribute(k, v) for k, (_, _, v) in ATTRIBUTES.items()]
    defaults += [helper.make_attribute(k, v) for k, v in PLUGIN_ATTRIBUTES.items()]
    defaults += [
        helper.make_attribute(opdef.HAS_ANCHORS, roles[0]),
        helper.make_attribute(opdef.THRESHOLD_INPUTS, roles[1]),
    ]
    return helper.make_function(
        opdef.OP_DOMAIN,
        opdef.OP_TYPE,
        formal_inputs(roles),
        list(OUTPUTS),
        b.nodes,
        [helper.make_opsetid("", opset)],
        attributes=[],
        attribute_protos=defaults,
    )


def nms_nodes(model) -> list:
    return [
        n for n in model.graph.node if n.op_type == opdef.OP_TYPE and n.domain == opdef.OP_DOMAIN
    ]


def add_function_bodies(model):
    """Give ``model``'s EdgeDetNMS nodes their standard-ops local function (in place; returns the
    model).

    Replaces an existing EdgeDetNMS function (so a stale body never survives) and adds the
    ``edgedet`` opset import. ExportError when the model's opset is too old or its nodes disagree
    on which optional inputs they pass."""
    from edgedet.onnx.tools import opset_of

    nodes = nms_nodes(model)
    if not nodes:
        return model
    opset = opset_of(model)
    if opset < MIN_OPSET:
        raise ExportError(
            f"the EdgeDetNMS op needs opset >= {MIN_OPSET}; the model is opset {opset} "
            "(export with --opset 17, or use --nms graph)"
        )
    layouts = {node_roles(n) for n in nodes}
    if len(layouts) > 1:
        raise ExportError(
            "the model's EdgeDetNMS nodes differ in which optional inputs (anchors,"
            f" score_threshold, iou_threshold) they pass: {sorted(layouts)} as"
            f" ({opdef.HAS_ANCHORS}, {opdef.THRESHOLD_INPUTS}); one local function cannot serve"
            " them all"
        )
    keep = [
        f for f in model.functions if not (f.name == opdef.OP_TYPE and f.domain == opdef.OP_DOMAIN)
    ]
    del model.functions[:]
    model.functions.extend([*keep, function_body(layouts.pop(), opset)])
    if not any(o.domain == opdef.OP_DOMAIN for o in model.opset_import):
        from onnx import helper

        model.opset_import.append(helper.make_opsetid(opdef.OP_DOMAIN, 1))
    return model


def check_plugin_size(n: int, c: int, top_k: int) -> int:
    """M, the candidates per image the plugin's kernels get; ExportError above their limit (an
    engine would build, then fail on every call)."""
    m = min(top_k or n * c, n * c)
    if m > opdef.PLUGIN_MAX_CANDIDATES:
        raise ExportError(
            f"--nms edgedet: {m} candidates per image (N={n} x C={c}, top_k {top_k or 'none'})"
            f" exceed the EdgeDetNMS plugin's limit of {opdef.PLUGIN_MAX_CANDIDATES}; export with"
            f" --top-k {opdef.PLUGIN_MAX_CANDIDATES} or less (1000 is the usual value)"
        )
    return m


def attach(model, params: NMSParams, raw, runtime_thresholds: bool = False):
    """The ``edgedet`` implementation of edgedet.onnx.nms.attach_nms (``raw``: RawOutputs)."""
    from onnx import TensorProto, helper, numpy_helper

    from edgedet.onnx.nms import replace_outputs
    from edgedet.onnx.nms.body import check_size

    check_plugin_size(raw.n, raw.c, params.top_k)
    try:  # the function body has the graph's limits
        check_size(raw.n, raw.c, params.top_k, params.class_agnostic)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    inputs = [raw.boxes, raw.scores, "", "", ""]
    if raw.anchors is not None:
        inputs[2] = "nms/anchors"
        model.graph.initializer.append(numpy_helper.from_array(raw.anchors, "nms/anchors"))
        if raw.boxes_type != TensorProto.FLOAT:  # all float inputs share the type T
            inputs[2] = "nms/anchors_cast"
            model.graph.node.append(
                helper.make_node("Cast", ["nms/anchors"], [inputs[2]], to=raw.boxes_type)
            )
    if raw.boxes_type != raw.scores_type:
        inputs[0] = "nms/boxes_cast"
        model.graph.node.append(
            helper.make_node("Cast", [raw.boxes], [inputs[0]], to=raw.scores_type)
        )
    if runtime_thresholds:
        inputs[3:] = [contract.SCORE_THRESHOLD_INPUT, contract.IOU_THRESHOLD_INPUT]
        for name in inputs[3:]:
            model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]))
    produced = {name: f"nms/{name}" for name in OUTPUTS}
    model.graph.node.append(
        make_node(inputs, [produced[n] for n in OUTPUTS], params, name="nms/EdgeDetNMS")
    )
    if raw.scores_type != TensorProto.FLOAT:  # the contract's outputs are float32
        for name in (contract.DET_BOXES, contract.DET_SCORES):
            model.graph.node.append(
                helper.make_node("Cast", [produced[name]], [f"{produced[name]}_f32"], to=1)
            )
            produced[name] = f"{produced[name]}_f32"
    replace_outputs(model, produced, raw, params.max_output_boxes)
    return add_function_bodies(model)
