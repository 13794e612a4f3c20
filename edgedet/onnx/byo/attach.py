"""Bring your own ONNX: turn a third-party detector's raw outputs into the edgedet contract.

Steps (each a small function): upgrade old opsets, move initialisers out of graph inputs, move
the model's own tensors off the contract's names (``images``, ``boxes``, ``scores``, ...), pin
the image input (fixed H, W), fold input scaling / mean-std / BGR order in (FP16 models: cast
after normalising), read the head (``HEADS``: boxes+scores, a combined YOLO-style output, or a
raw grid that ``edgedet.onnx.byo.decode`` decodes), bring it to [B, N, 4] / [B, N, C] float32,
convert boxes to pixel (x1, y1, x2, y2), apply the score activation, drop a background column,
check the result on a probe image (``edgedet.onnx.byo.inspect``), then append NMS like any export.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edgedet import contract
from edgedet.errors import InputError, first_line
from edgedet.nms.params import NMSParams
from edgedet.onnx.builder import NodeBuilder

MIN_OPSET = 13  # below this, Slice/Split/Squeeze take attributes and our surgery would differ
# Names edgedet gives its own tensors: a third-party tensor carrying one is renamed first.
RESERVED_NAMES = frozenset(
    {
        contract.INPUT_NAME,
        *contract.RAW_OUTPUTS,
        *contract.NMS_OUTPUTS,
        *contract.THRESHOLD_INPUTS,
        contract.DET_MASKS,
    }
)
FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto element types


@dataclass
class ByoSpec:
    boxes: str | None = None  # output holding boxes
    scores: str | None = None  # output holding scores
    combined: str | None = (
        None  # one output with 4 box values then (objectness +) C scores per candidate
    )
    box_format: str = "xyxy"  # xyxy | cxcywh
    normalized: bool = False  # boxes in 0..1 of the input size
    score_activation: str = "none"  # none | sigmoid | softmax
    objectness: bool = False  # combined output has an objectness column (YOLOv5): score = obj * cls
    background_class: int = -1  # score column that means "no object": dropped from the outputs
    imgsz: tuple[int, int] | int | None = None  # pins dynamic H/W: (H, W) or one size for both
    input_scale: float = 1.0  # the model wants pixels * input_scale (255 for 0..255 models)
    mean: tuple[float, ...] | None = (
        None  # the model wants (x - mean) / std, x in the model's own scale
    )
    std: tuple[float, ...] | None = None
    class_names: list[str] = field(default_factory=list)
    # none | yolox | ltrb | ssd: raw heads decoded in the graph (edgedet.onnx.byo.decode)
    decode: str = "none"
    strides: tuple[int, ...] = (8, 16, 32)  # feature strides of a raw grid head
    anchors: str | None = None  # --decode ssd: file of prior boxes [N, 4] (cx, cy, w, h)
    variances: tuple[float, float] = (0.1, 0.2)  # --decode ssd: centre and size variances
    channel_order: str = "RGB"  # the model's channel order; BGR is reversed inside the graph
    resize: str = "letterbox"  # letterbox | stretch: how the runtime fits images to the input
    padding: str = "center"  # center | top-left: where letterbox padding goes
    check: bool = True  # run the converted head on a probe image and refuse implausible outputs

    def renamed(self, renames: dict[str, str]) -> ByoSpec:
        """The same spec with output names moved by :func:`free_reserved_names`."""
        return replace(
            self,
            **{
                k: renames.get(getattr(self, k), getattr(self, k))
                for k in ("boxes", "scores", "combined")
                if getattr(self, k)
            },
        )


def _helper():
    import onnx
    from onnx import helper, numpy_helper

    return onnx, helper, numpy_helper


def upgrade_opset(model, target: int = 17):
    """Convert models below opset 13 to ``target``; InputError when the converter cannot."""
    from edgedet.onnx.tools import opset_of

    onnx, _, _ = _helper()
    if opset_of(model) >= MIN_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, target)
    except Exception as exc:
        raise InputError(
            f"cannot upgrade the model from opset {opset_of(model)} to {target} "
            f"({first_line(exc, 160)}); re-export it at opset >= 13"
        ) from None


def drop_initializer_inputs(model) -> int:
    """Old exporters list weights as graph inputs; TensorRT and our input checks want only real
    inputs."""
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    removed = len(model.graph.input) - len(keep)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return removed


def free_reserved_names(model, reserved: frozenset[str] = RESERVED_NAMES) -> dict[str, str]:
    """Rename the model's tensors named like ``reserved`` contract tensors (``images``, ``boxes``,
    ...) to ``byo_src_<name>``: every Ultralytics/YOLOX export names its input ``images`` and
    SSD-style models name their outputs ``boxes``/``scores``, which would collide with the tensors
    we add (a name produced twice fails the ONNX checker, and the cycle it makes sent onnxslim into
    unbounded recursion). Returns {old: new}; the user keeps naming outputs by their old names."""
    names = _tensor_names(model.graph)
    renames = {}
    for old in sorted(reserved & names):
        new, i = f"byo_src_{old}", 1
        while new in names:
            new, i = f"byo_src{i}_{old}", i + 1
        renames[old] = new
    if renames:
        _rename(model.graph, renames)
    return renames


def _tensor_names(graph) -> set[str]:
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        for g in _subgraphs(node):
            names |= _tensor_names(g)
    return names - {""}


def _subgraphs(node):
    for a in node.attribute:
        if a.HasField("g"):
            yield a.g
        yield from a.graphs


def _rename(graph, renames: dict[str, str]) -> None:
    """Rename tensors everywhere in ``graph`` and its subgraphs (If/Loop bodies see outer names)."""
    for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        v.name = renames.get(v.name, v.name)
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
        for g in _subgraphs(node):
            _rename(g, renames)


def _pin_size(imgsz) -> tuple[int, int] | None:
    if imgsz is None or isinstance(imgsz, int):
        return (imgsz, imgsz) if imgsz else None
    return int(imgsz[0]), int(imgsz[1])


def image_input(model, imgsz) -> tuple[str, int, int, int]:
    """Check there is one [B, 3, H, W] float input; pin dynamic H/W to ``imgsz`` ((H, W) or one
    int); return (name, H, W, element type)."""
    if len(model.graph.input) != 1:
        raise InputError(
            f"the model has {len(model.graph.input)} inputs"
            f" ({[i.name for i in model.graph.input]}); edgedet needs exactly one image input"
        )
    inp = model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise InputError(f"input '{inp.name}' has rank {len(dims)}; expected [B, 3, H, W]")
    if dims[1].HasField("dim_value") and dims[1].dim_value != 3:
        raise InputError(f"input '{inp.name}' has {dims[1].dim_value} channels; expected 3 (NCHW)")
    elem = inp.type.tensor_type.elem_type
    if elem not in (FLOAT, FLOAT16):
        raise InputError(
            f"input '{inp.name}' has element type {_type_name(elem)}; attach-nms takes float32 or "
            "float16 image inputs"
        )
    pin = _pin_size(imgsz)
    size = []
    for axis in (2, 3):
        if not dims[axis].HasField("dim_value") or dims[axis].dim_value <= 0:
            if not pin:
                raise InputError(
                    "the input height/width are dynamic; pass --imgsz SIZE or HEIGHTxWIDTH "
                    "(e.g. 640 or 480x640) to pin them"
                )
            dims[axis].Clear()
            dims[axis].dim_value = pin[axis - 2]
        size.append(dims[axis].dim_value)
    if pin and tuple(size) != pin:
        raise InputError(
            f"input '{inp.name}' is fixed at {size[0]}x{size[1]}; --imgsz {pin[0]}x{pin[1]} cannot "
            "change it (drop --imgsz)"
        )
    return inp.name, size[0], size[1], elem


def _type_name(elem: int) -> str:
    import onnx

    return onnx.TensorProto.DataType.Name(elem).lower()


def prepend_input_transform(model, old_name: str, spec: ByoSpec, elem_type: int = FLOAT) -> None:
    """Feed the model from a contract ``images`` input (float32 0..1 RGB): channel order, scale and
    normalisation in float32, then a Cast when the model itself is FP16 (its weights stay FP16)."""
    _, helper, numpy_helper = _helper()
    graph = model.graph
    graph.input[0].name = contract.INPUT_NAME
    graph.input[0].type.tensor_type.elem_type = FLOAT
    scale = np.float32(spec.input_scale)
    mean = np.asarray(spec.mean or (0.0, 0.0, 0.0), np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std or (1.0, 1.0, 1.0), np.float32).reshape(1, 3, 1, 1)
    if spec.channel_order == "BGR":  # mean/std are given R,G,B; they apply to the reversed channels
        mean, std = mean[:, ::-1].copy(), std[:, ::-1].copy()
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(scale), "byo_scale"),
            numpy_helper.from_array(mean, "byo_mean"),
            numpy_helper.from_array(std, "byo_std"),
        ]
    )
    first = contract.INPUT_NAME
    nodes = []
    if spec.channel_order == "BGR":
        graph.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "byo_bgr"))
        nodes.append(
            helper.make_node(
                "Gather", [first, "byo_bgr"], ["byo_bgr_images"], axis=1, name="byo_input_bgr"
            )
        )
        first = "byo_bgr_images"
    normalized = old_name if elem_type == FLOAT else "byo_normalized"
    nodes += [
        helper.make_node("Mul", [first, "byo_scale"], ["byo_scaled"], name="byo_input_scale"),
        helper.make_node(
            "Sub", ["byo_scaled", "byo_mean"], ["byo_centered"], name="byo_input_mean"
        ),
        helper.make_node("Div", ["byo_centered", "byo_std"], [normalized], name="byo_input_std"),
    ]
    if elem_type != FLOAT:
        nodes.append(
            helper.make_node("Cast", [normalized], [old_name], to=elem_type, name="byo_input_cast")
        )
    for i, n in enumerate(nodes):
        graph.node.insert(i, n)


def output_shape(model, name: str) -> list[int | None]:
    """Declared shape of graph output ``name`` (None for unknown dims)."""
    for o in model.graph.output:
        if o.name == name:
            return [
                d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in o.type.tensor_type.shape.dim
            ]
    raise InputError(
        f"the model has no output '{name}'; its outputs are {[o.name for o in model.graph.output]}"
    )


def output_type(model, name: str) -> int:
    return next(o.type.tensor_type.elem_type for o in model.graph.output if o.name == name)


def _to_bnk(
    b: NodeBuilder, name: str, shape: list, k: int | None, n: int | None, what: str
) -> tuple[str, int]:
    """Bring an output to [B, N, K] (K = 4 for boxes); returns (tensor, N)."""
    if any(d is None for d in shape[1:]):
        raise InputError(
            f"output '{name}' has dynamic dims {shape}; pin the input size with --imgsz"
        )
    if len(shape) == 2:  # [N, K] without batch
        if k is not None and shape[1] != k:
            raise InputError(
                f"output '{name}' has shape {shape}: no axis of size {k} last; it does not hold"
                f" {what}"
            )
        return b.op("Unsqueeze", [name, b.const([0])]), shape[0]
    if len(shape) == 4 and shape[2] == 1:  # [B, N, 1, 4] (TF / TAO style)
        return _to_bnk(
            b, b.op("Squeeze", [name, b.const([2])]), [shape[0], shape[1], shape[3]], k, n, what
        )
    if len(shape) != 3:
        raise InputError(
            f"output '{name}' has shape {shape}; {what} must be [B, N, K] or [B, K, N]"
        )
    channels_first = (k is not None and shape[1] == k and shape[2] != k) or (
        n is not None and shape[2] == n and shape[1] != n
    )
    if channels_first:
        return b.op("Transpose", [name], perm=[0, 2, 1]), shape[2]
    if k is not None and shape[2] != k:
        raise InputError(
            f"output '{name}' has shape {shape}: no axis of size {k}; it does not hold {what}"
        )
    return name, shape[1]


@dataclass
class Head:
    """A head brought to [B, N, 4] boxes (in ``box_format``, maybe normalised) and [B, N, C]
    scores."""

    boxes: str
    scores: str
    n: int
    classes: int
    box_format: str
    normalized: bool


def read_combined(
    model, b: NodeBuilder, spec: ByoSpec, shapes: dict, height: int, width: int
) -> Head:
    """One YOLO-style output [B, 4(+1)+C, N] or [B, N, 4(+1)+C]; a raw grid is decoded first."""
    shape = shapes[spec.combined]
    if len(shape) != 3 or None in shape[1:]:
        raise InputError(
            f"combined output '{spec.combined}' has shape {shape}; expected [B, 4+C, N] or [B, N,"
            " 4+C]"
        )
    first = shape[1] < shape[2]
    t = b.op("Transpose", [spec.combined], perm=[0, 2, 1]) if first else spec.combined
    t = b.as_float(t, output_type(model, spec.combined))
    k, n = (shape[1], shape[2]) if first else (shape[2], shape[1])
    objectness = spec.objectness or spec.decode == "yolox"
    extra = 5 if objectness else 4
    if k <= extra:
        raise InputError(
            f"combined output '{spec.combined}' has {k} values per candidate; needs {extra} +"
            " classes"
        )
    boxes, scores = b.slice_last(t, 0, 4), b.slice_last(t, extra, k)
    box_format = spec.box_format
    if spec.decode != "none":
        from edgedet.onnx.byo.decode import decode_grid, decode_ssd

        boxes, box_format = (
            decode_ssd(b, boxes, spec, n)
            if spec.decode == "ssd"
            else decode_grid(b, boxes, spec, n, height, width)
        )
    scores = _activate(b, scores, spec.score_activation)
    if objectness:
        scores = b.op("Mul", [scores, _activate(b, b.slice_last(t, 4, 5), spec.score_activation)])
    return Head(boxes, scores, n, k - extra, box_format, spec.normalized)


def read_split(model, b: NodeBuilder, spec: ByoSpec, shapes: dict, height: int, width: int) -> Head:
    """Separate box and score outputs, in any of the layouts :func:`_to_bnk` accepts."""
    if spec.decode not in ("none", "ssd"):
        raise InputError(
            f"--decode {spec.decode} reads one combined output (--combined OUT), not"
            " --boxes/--scores"
        )
    boxes, n = _to_bnk(b, spec.boxes, shapes[spec.boxes], 4, None, "boxes")
    sshape = shapes[spec.scores]
    scores, n2 = _to_bnk(b, spec.scores, sshape, None, n, "scores")
    if n2 != n:
        raise InputError(f"boxes have {n} candidates but scores '{spec.scores}' has shape {sshape}")
    classes = sshape[-1] if sshape[-2] == n or len(sshape) == 2 else sshape[1]
    boxes, scores = (
        b.as_float(boxes, output_type(model, spec.boxes)),
        b.as_float(scores, output_type(model, spec.scores)),
    )
    box_format = spec.box_format
    if spec.decode == "ssd":
        from edgedet.onnx.byo.decode import decode_ssd

        boxes, box_format = decode_ssd(b, boxes, spec, n)
    return Head(
        boxes, _activate(b, scores, spec.score_activation), n, classes, box_format, spec.normalized
    )


# How to read each kind of head; a new kind (e.g. final NMS-free outputs) adds an entry and a rule
# in head_kind.
HEADS = {"combined": read_combined, "split": read_split}


def head_kind(spec: ByoSpec) -> str:
    if spec.combined:
        return "combined"
    if spec.boxes and spec.scores:
        return "split"
    raise InputError(
        "name the outputs: --boxes OUT --scores OUT, or --combined OUT "
        "(`edgedet attach-nms MODEL --inspect` suggests them)"
    )


def _activate(b: NodeBuilder, scores: str, activation: str) -> str:
    if activation == "sigmoid":
        return b.op("Sigmoid", [scores])
    if activation == "softmax":
        return b.op("Softmax", [scores], axis=-1)
    return scores


def head_shapes(model, spec: ByoSpec) -> dict[str, list]:
    """Shapes of the outputs the spec names: declared on the graph output, else ONNX shape
    inference, else one ONNX Runtime run (old exporters leave intermediate dims unknown)."""
    import onnx

    names = [n for n in (spec.combined, spec.boxes, spec.scores) if n]
    shapes = {n: output_shape(model, n) for n in names}
    if all(None not in s[1:] for s in shapes.values()):
        return shapes
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.output}
    for n in names:
        dims = [
            d.dim_value if d.dim_value > 0 else None for d in inferred[n].type.tensor_type.shape.dim
        ]
        shapes[n] = (
            [a if a is not None else c for a, c in zip(shapes[n], dims)] if shapes[n] else dims
        )
    if all(s and None not in s[1:] for s in shapes.values()):
        return shapes
    from edgedet.onnx.byo.inspect import run_once

    return {n: list(a.shape) for n, a in run_once(model, names).items()}


def convert_outputs(model, spec: ByoSpec, height: int, width: int) -> int:
    """Add ``boxes`` [B, N, 4] xyxy pixels and ``scores`` [B, N, C] float32 probs; return C."""
    shapes = head_shapes(model, spec)
    b = NodeBuilder("byo_", model.graph)
    head = HEADS[head_kind(spec)](model, b, spec, shapes, height, width)
    boxes = boxes_to_pixels_xyxy(b, head, height, width)
    scores, classes = _drop_background(b, head.scores, head.classes, spec.background_class)
    _set_outputs(
        model, b, {contract.RAW_BOXES: (boxes, 4), contract.RAW_SCORES: (scores, classes)}, head.n
    )
    return classes


def _drop_background(b: NodeBuilder, scores: str, classes: int, background: int) -> tuple[str, int]:
    """SSD-style heads score "no object" in one column: remove it, so class ids are the user's."""
    if background < 0:
        return scores, classes
    if background >= classes or classes < 2:
        raise InputError(
            f"--background-class {background} is not a column of the {classes} score columns"
        )
    parts = [
        b.slice_last(scores, lo, hi)
        for lo, hi in ((0, background), (background + 1, classes))
        if hi > lo
    ]
    return (parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=-1)), classes - 1


def boxes_to_pixels_xyxy(b: NodeBuilder, head: Head, height: int, width: int) -> str:
    if head.box_format not in ("xyxy", "cxcywh"):
        raise InputError(f"--box-format {head.box_format} is not xyxy or cxcywh")
    boxes = head.boxes
    if head.normalized:
        boxes = b.op("Mul", [boxes, b.const([width, height, width, height], np.float32)])
    if head.box_format == "cxcywh":
        c, half = (
            b.slice_last(boxes, 0, 2),
            b.op("Mul", [b.slice_last(boxes, 2, 4), b.const(0.5, np.float32)]),
        )
        boxes = b.op("Concat", [b.op("Sub", [c, half]), b.op("Add", [c, half])], axis=-1)
    return boxes


def _set_outputs(model, b: NodeBuilder, tensors: dict[str, tuple[str, int]], n: int) -> None:
    """Expose ``tensors`` ({name: (source, last dim)}) as float32 [B, n, last] graph outputs.

    The shapes are declared from what the head reader established, not from ONNX shape
    inference: old exporters leave intermediate dims unknown ('unk__58'), which NMS cannot take."""
    from edgedet.onnx.graph import toposort

    del model.graph.output[:]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    b_dim = (
        batch.dim_value
        if batch.HasField("dim_value") and batch.dim_value > 0
        else (batch.dim_param or "batch")
    )
    for name, (src, last) in tensors.items():
        model.graph.node.append(b.helper.make_node("Identity", [src], [name], name=f"byo_{name}"))
        model.graph.output.append(b.helper.make_tensor_value_info(name, FLOAT, [b_dim, n, last]))
    toposort(model)


def class_names_from_metadata(model) -> list[str]:
    """Ultralytics writes its class names into the ONNX metadata ('names': "{0: 'person', ...}")."""
    import ast

    meta = {p.key: p.value for p in model.metadata_props}
    try:
        names = ast.literal_eval(meta.get("names", "{}"))
    except (ValueError, SyntaxError):
        return []
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return [str(names[i]) for i in range(len(names))]
    return []


def attach_third_party(model, spec: ByoSpec, nms: NMSParams, implementation: str = "edgedet"):
    """Whole BYO pipeline on a loaded ModelProto; returns (model, info for the manifest)."""
    model = upgrade_opset(model)
    dropped = drop_initializer_inputs(model)
    renames = free_reserved_names(model)
    spec = spec.renamed(renames)
    old_input, height, width, elem = image_input(model, spec.imgsz)
    prepend_input_transform(model, old_input, spec, elem)
    classes = convert_outputs(model, spec, height, width)
    probe = None
    if spec.check:
        from edgedet.onnx.byo.inspect import check_raw_outputs

        probe = check_raw_outputs(model, spec, height, width)
    if implementation != "none":
        from edgedet.onnx.nms import attach_nms

        model = attach_nms(model, nms, implementation=implementation)
    return model, {
        "height": height,
        "width": width,
        "classes": classes,
        "initializer_inputs_dropped": dropped,
        "nms": nms,
        "renamed": renames,
        "precision": "fp16" if elem == FLOAT16 else "fp32",
        "probe": probe,
    }


def _class_names(spec: ByoSpec, source_model, classes: int, background: int) -> list[str]:
    """The user's names (a listed background entry at the dropped column is removed), the model's
    own metadata names, or class0..; InputError when the count does not fit."""
    names = list(spec.class_names) or class_names_from_metadata(source_model)
    if background >= 0 and len(names) == classes + 1:
        # the user listed the background class too
        names = names[:background] + names[background + 1 :]
    if not names:
        names = [f"class{i}" for i in range(classes)]
    if len(names) != classes:
        raise InputError(
            f"{len(names)} class names given, the model has {classes} classes"
            + (" after dropping the background column" if background >= 0 else "")
        )
    return names


def attach_file(source, output, spec: ByoSpec, nms: NMSParams, implementation: str = "edgedet"):
    """Read ``source``, convert it, write ``output`` + manifest atomically; returns the Manifest."""
    from edgedet.fileio import check_output, sha256_file
    from edgedet.manifest import InputInfo, Manifest, write_onnx_artifact
    from edgedet.onnx.tools import check_model, io_specs, load_onnx, simplify

    output = check_output(output, [source])
    source_model = load_onnx(source)
    model, info = attach_third_party(source_model, spec, nms, implementation)
    names = _class_names(spec, source_model, info["classes"], spec.background_class)
    model = simplify(model)
    check_model(model, str(output))
    _, outputs = io_specs(model)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    kind = contract.output_kind([o.name for o in outputs])
    manifest = Manifest(
        family="byo",
        model=str(getattr(source, "name", source)).rsplit("/", 1)[-1],
        class_names=list(names),
        input=InputInfo(
            contract.INPUT_NAME,
            (
                batch.dim_value if batch.HasField("dim_value") else -1,
                3,
                info["height"],
                info["width"],
            ),
            "float32",
            resize=spec.resize,
            padding=spec.padding,
        ),
        output_kind=kind,
        outputs=outputs,
        nms=info["nms"],
        nms_where="graph" if kind == contract.KIND_NMS else "host",
        nms_implementation=implementation if kind == contract.KIND_NMS else "host",
        normalization={
            "input_scale": spec.input_scale,
            "mean": list(spec.mean or ()),
            "std": list(spec.std or ()),
            "in_graph": True,
            "model_channel_order": spec.channel_order,
        },
        precision={
            "mode": info["precision"],
            "io": (
                "float32 (FP16 model: cast after normalising, outputs cast "
                "to float32 before decode and NMS)"
                if info["precision"] == "fp16"
                else "float32"
            ),
        },
        source={"onnx": str(source), "sha256": sha256_file(source)},
        category_ids=list(range(1, len(names) + 1)),
        notes={
            "byo": {k: v for k, v in spec.__dict__.items() if k != "class_names"},
            "initializer_inputs_dropped": info["initializer_inputs_dropped"],
            "renamed_tensors": info["renamed"],
            "probe": info["probe"],
        },
    )
    write_onnx_artifact(model, output, manifest)  # artifact + manifest as one transaction
    return manifest
