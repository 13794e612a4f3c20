"""Bring your own ONNX: turn a third-party detector's raw outputs into the edgedet contract.

Steps (each a small function): upgrade old opsets, move initialisers out of graph inputs,
rename and pin the image input (fixed H, W), fold input scaling / mean-std in, reshape the
box and score outputs to [B, N, 4] / [B, N, C] (transposing channel-first layouts and
splitting a combined YOLO-style output), convert box formats to pixel (x1, y1, x2, y2), apply
the score activation, then append NMS like any edgedet export.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgedet import contract
from edgedet.errors import InputError
from edgedet.nms.params import NMSParams

MIN_OPSET = 13  # below this, Slice/Split/Squeeze take attributes and our surgery would differ


@dataclass
class ByoSpec:
    boxes: str | None = None  # output holding boxes
    scores: str | None = None  # output holding scores
    combined: str | None = None  # one output with 4 box values then (objectness +) C scores per candidate
    box_format: str = "xyxy"  # xyxy | cxcywh
    normalized: bool = False  # boxes in 0..1 of the input size
    score_activation: str = "none"  # none | sigmoid | softmax
    objectness: bool = False  # combined output has an objectness column (YOLOv5): score = obj * cls
    background_class: int = -1
    imgsz: int | None = None  # pins dynamic H/W
    input_scale: float = 1.0  # the model wants pixels * input_scale (255 for 0..255 models)
    mean: tuple[float, ...] | None = None  # the model wants (x - mean) / std, x in the model's own scale
    std: tuple[float, ...] | None = None
    class_names: list[str] = field(default_factory=list)


def _helper():
    import onnx
    from onnx import helper, numpy_helper

    return onnx, helper, numpy_helper


def upgrade_opset(model, target: int = 17):
    """Convert models below opset 13 to ``target``; InputError when the converter cannot."""
    from exporters.onnx_tools import opset_of

    onnx, _, _ = _helper()
    if opset_of(model) >= MIN_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, target)
    except Exception as exc:
        raise InputError(f"cannot upgrade the model from opset {opset_of(model)} to {target} "
                         f"({str(exc).splitlines()[0][:160]}); re-export it at opset >= 13") from None


def drop_initializer_inputs(model) -> int:
    """Old exporters list weights as graph inputs; TensorRT and our input checks want only real inputs."""
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    removed = len(model.graph.input) - len(keep)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return removed


def image_input(model, imgsz: int | None) -> tuple[str, int, int]:
    """Check there is one [B, 3, H, W] input; pin dynamic H/W to ``imgsz``; return (name, H, W)."""
    if len(model.graph.input) != 1:
        raise InputError(f"the model has {len(model.graph.input)} inputs ({[i.name for i in model.graph.input]}); "
                         "edgedet needs exactly one image input")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise InputError(f"input '{model.graph.input[0].name}' has rank {len(dims)}; expected [B, 3, H, W]")
    if dims[1].HasField("dim_value") and dims[1].dim_value != 3:
        raise InputError(f"input '{model.graph.input[0].name}' has {dims[1].dim_value} channels; expected 3 (NCHW RGB)")
    size = []
    for axis in (2, 3):
        if not dims[axis].HasField("dim_value") or dims[axis].dim_value <= 0:
            if not imgsz:
                raise InputError("the input height/width are dynamic; pass --imgsz to pin them")
            dims[axis].Clear()
            dims[axis].dim_value = imgsz
        size.append(dims[axis].dim_value)
    return model.graph.input[0].name, size[0], size[1]


def prepend_input_transform(model, old_name: str, spec: ByoSpec) -> None:
    """Feed the model from a contract ``images`` input (0..1 RGB): scale and normalise in graph."""
    _, helper, numpy_helper = _helper()
    graph = model.graph
    graph.input[0].name = contract.INPUT_NAME
    scale = np.float32(spec.input_scale)
    mean = np.asarray(spec.mean or (0.0, 0.0, 0.0), np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std or (1.0, 1.0, 1.0), np.float32).reshape(1, 3, 1, 1)
    graph.initializer.extend([numpy_helper.from_array(np.asarray(scale), "byo_scale"),
                              numpy_helper.from_array(mean, "byo_mean"), numpy_helper.from_array(std, "byo_std")])
    nodes = [helper.make_node("Mul", [contract.INPUT_NAME, "byo_scale"], ["byo_scaled"], name="byo_input_scale"),
             helper.make_node("Sub", ["byo_scaled", "byo_mean"], ["byo_centered"], name="byo_input_mean"),
             helper.make_node("Div", ["byo_centered", "byo_std"], [old_name], name="byo_input_std")]
    for i, n in enumerate(nodes):
        graph.node.insert(i, n)


def output_shape(model, name: str) -> list[int | None]:
    for o in model.graph.output:
        if o.name == name:
            return [d.dim_value if d.HasField("dim_value") else None for d in o.type.tensor_type.shape.dim]
    raise InputError(f"the model has no output '{name}'; its outputs are {[o.name for o in model.graph.output]}")


class _Builder:
    """Appends nodes and constants to a graph with unique 'byo_' names."""

    def __init__(self, model) -> None:
        self.onnx, self.helper, self.nh = _helper()
        self.graph = model.graph
        self.count = 0

    def const(self, value, dtype=np.int64) -> str:
        name = self._name("c")
        self.graph.initializer.append(self.nh.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self._name(op.lower())
        self.graph.node.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def slice_last(self, x: str, start: int, end: int) -> str:
        return self.node("Slice", [x, self.const([start]), self.const([end]), self.const([-1])])

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"byo_{kind}_{self.count}"


def _to_bnk(b: _Builder, name: str, shape: list, k: int | None, n: int | None, what: str) -> tuple[str, int]:
    """Bring an output to [B, N, K] (K = 4 for boxes); returns (tensor, N)."""
    if any(d is None for d in shape[1:]):
        raise InputError(f"output '{name}' has dynamic dims {shape}; pin the input size with --imgsz")
    if len(shape) == 2:  # [N, K] without batch
        if k is not None and shape[1] != k:
            raise InputError(f"output '{name}' has shape {shape}: no axis of size {k} last; it does not hold {what}")
        return b.node("Unsqueeze", [name, b.const([0])]), shape[0]
    if len(shape) == 4 and shape[2] == 1:  # [B, N, 1, 4] (TF / TAO style)
        return _to_bnk(b, b.node("Squeeze", [name, b.const([2])]), [shape[0], shape[1], shape[3]], k, n, what)
    if len(shape) != 3:
        raise InputError(f"output '{name}' has shape {shape}; {what} must be [B, N, K] or [B, K, N]")
    channels_first = (k is not None and shape[1] == k and shape[2] != k) or (n is not None and shape[2] == n and shape[1] != n)
    if channels_first:
        return b.node("Transpose", [name], perm=[0, 2, 1]), shape[2]
    if k is not None and shape[2] != k:
        raise InputError(f"output '{name}' has shape {shape}: no axis of size {k}; it does not hold {what}")
    return name, shape[1]


def convert_outputs(model, spec: ByoSpec, height: int, width: int) -> int:
    """Add ``boxes`` [B, N, 4] xyxy pixels and ``scores`` [B, N, C] probs; return C."""
    import onnx

    model.CopyFrom(onnx.shape_inference.infer_shapes(model))
    b = _Builder(model)
    if spec.combined:
        shape = output_shape(model, spec.combined)
        if len(shape) != 3:
            raise InputError(f"combined output '{spec.combined}' has shape {shape}; expected [B, 4+C, N] or [B, N, 4+C]")
        first = shape[1] is not None and shape[2] is not None and shape[1] < shape[2]
        t = b.node("Transpose", [spec.combined], perm=[0, 2, 1]) if first else spec.combined
        k = shape[1] if first else shape[2]
        extra = 5 if spec.objectness else 4
        if k is None or k <= extra:
            raise InputError(f"combined output '{spec.combined}' has {k} values per candidate; needs {extra} + classes")
        boxes, scores = b.slice_last(t, 0, 4), b.slice_last(t, extra, k)
        classes = k - extra
        if spec.objectness:
            scores = b.node("Mul", [scores, b.slice_last(t, 4, 5)])
    else:
        if not (spec.boxes and spec.scores):
            raise InputError("name the outputs: --boxes OUT --scores OUT, or --combined OUT")
        boxes, n = _to_bnk(b, spec.boxes, output_shape(model, spec.boxes), 4, None, "boxes")
        sshape = output_shape(model, spec.scores)
        scores, n2 = _to_bnk(b, spec.scores, sshape, None, n, "scores")
        if n2 != n:
            raise InputError(f"boxes have {n} candidates but scores '{spec.scores}' has shape {sshape}")
        classes = sshape[-1] if sshape[-2] == n or len(sshape) == 2 else sshape[1]
    boxes = _boxes_to_pixels_xyxy(b, boxes, spec, height, width)
    scores = {"none": scores, "sigmoid": None, "softmax": None}[spec.score_activation] or (
        b.node("Sigmoid", [scores]) if spec.score_activation == "sigmoid" else b.node("Softmax", [scores], axis=-1))
    _set_outputs(model, b, {contract.RAW_BOXES: boxes, contract.RAW_SCORES: scores}, classes)
    return classes


def _boxes_to_pixels_xyxy(b: _Builder, boxes: str, spec: ByoSpec, height: int, width: int) -> str:
    if spec.box_format not in ("xyxy", "cxcywh"):
        raise InputError(f"--box-format {spec.box_format} is not xyxy or cxcywh")
    if spec.normalized:
        boxes = b.node("Mul", [boxes, b.const([width, height, width, height], np.float32)])
    if spec.box_format == "cxcywh":
        c, half = b.slice_last(boxes, 0, 2), b.node("Mul", [b.slice_last(boxes, 2, 4), b.const(0.5, np.float32)])
        boxes = b.node("Concat", [b.node("Sub", [c, half]), b.node("Add", [c, half])], axis=-1)
    return boxes


def _set_outputs(model, b: _Builder, tensors: dict[str, str], classes: int) -> None:
    """Expose ``tensors`` as the graph outputs, with shapes from ONNX shape inference."""
    import onnx

    del model.graph.output[:]
    for name, src in tensors.items():
        model.graph.node.append(b.helper.make_node("Identity", [src], [name], name=f"byo_{name}"))
    from exporters.graph import toposort

    toposort(model)
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in inferred.graph.value_info}
    for name in tensors:
        if name not in infos:
            raise InputError(f"cannot infer the shape of '{name}'; pin the input size with --imgsz")
        model.graph.output.append(infos[name])


def attach_third_party(model, spec: ByoSpec, nms: NMSParams, implementation: str = "edgedet"):
    """Whole BYO pipeline on a loaded ModelProto; returns (model, info for the manifest)."""
    from exporters.graph import toposort

    model = upgrade_opset(model)
    dropped = drop_initializer_inputs(model)
    old_input, height, width = image_input(model, spec.imgsz)
    prepend_input_transform(model, old_input, spec)
    classes = convert_outputs(model, spec, height, width)
    toposort(model)
    nms = nms.replace(background_class=spec.background_class)
    if implementation != "none":
        from exporters.nms import attach_nms

        model = attach_nms(model, nms, implementation=implementation)
    return model, {"height": height, "width": width, "classes": classes, "initializer_inputs_dropped": dropped,
                   "nms": nms}


def attach_file(source, output, spec: ByoSpec, nms: NMSParams, implementation: str = "edgedet"):
    """Read ``source``, convert it, write ``output`` + manifest atomically; returns the Manifest."""
    from edgedet.fileio import check_output, sha256_file
    from edgedet.manifest import InputInfo, Manifest, write_onnx_artifact
    from exporters.onnx_tools import check_model, io_specs, load_onnx, simplify

    output = check_output(output, [source])
    model, info = attach_third_party(load_onnx(source), spec, nms, implementation)
    model = simplify(model)
    check_model(model, str(output))
    _, outputs = io_specs(model)
    names = spec.class_names or [f"class{i}" for i in range(info["classes"])]
    if len(names) != info["classes"]:
        raise InputError(f"{len(names)} class names given, the model has {info['classes']} classes")
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    kind = contract.output_kind([o.name for o in outputs])
    manifest = Manifest(
        family="byo", model=str(getattr(source, "name", source)).rsplit("/", 1)[-1], class_names=list(names),
        input=InputInfo(contract.INPUT_NAME, (batch.dim_value if batch.HasField("dim_value") else -1, 3,
                                              info["height"], info["width"]), "float32"),
        output_kind=kind, outputs=outputs, nms=info["nms"], nms_where="graph" if kind == contract.KIND_NMS else "host",
        nms_implementation=implementation if kind == contract.KIND_NMS else "host",
        normalization={"input_scale": spec.input_scale, "mean": list(spec.mean or ()), "std": list(spec.std or ()),
                       "in_graph": True},
        source={"onnx": str(source), "sha256": sha256_file(source)}, category_ids=list(range(1, len(names) + 1)),
        notes={"byo": {k: v for k, v in spec.__dict__.items() if k != "class_names"},
               "initializer_inputs_dropped": info["initializer_inputs_dropped"]},
    )
    write_onnx_artifact(model, output, manifest)  # artifact + manifest as one transaction
    return manifest
