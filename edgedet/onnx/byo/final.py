"""Bring your own ONNX whose outputs are already final detections (end-to-end heads, no NMS needed).

Two shapes of output, as the common exporters write them:
  rows   one output [B, K, W]: per row a box (4 values), a score and a class id, in the order
         ``columns`` says. Ultralytics ``export(format="onnx", end2end=True)`` (YOLOv10, YOLO26) and
         RT-DETR write ``output0 [1, 300, 6]`` = x1, y1, x2, y2, score, class (pixels of the input);
         mmdeploy writes ``dets [B, K, 5]`` (x1, y1, x2, y2, score) + ``labels [B, K]``
         (``labels``).
  detr   two outputs: ``pred_boxes [B, Q, 4]`` (cx, cy, w, h in 0..1 of the input) and ``logits``
         [B, Q, C+1] with a softmax over classes + a last "no object" column (DETR: each query's
         best real class) or [B, Q, C] with a sigmoid per class (RT-DETR, D-FINE, Deformable DETR:
         every (query, class) pair competes), as HuggingFace ``transformers`` models give them.
The graph is brought to the end-to-end raw form (boxes [B,N,4] input pixels xyxy, scores [B,N,C]
or [B,N,1] + labels [B,N]) and then to the four contract outputs by score threshold + top-k
(edgedet/onnx/nms/topk.py), or left raw for the runtime's host selection (``--nms none``). The input
side (one image input, pinned size, scaling, mean/std) is edgedet/onnx/byo/attach.py's.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

from edgedet import contract
from edgedet.errors import InputError
from edgedet.nms.params import NMSParams
from edgedet.onnx.builder import NodeBuilder
from edgedet.onnx.byo.attach import (
    RESERVED_NAMES,
    ByoSpec,
    Head,
    boxes_to_pixels_xyxy,
    drop_initializer_inputs,
    free_reserved_names,
    image_input,
    output_shape,
    prepend_input_transform,
    upgrade_opset,
)

BOX_TOKENS = ("xyxy", "cxcywh")
DETR_ACTIVATIONS = ("softmax", "sigmoid")
# the conversion also writes a ``labels`` output (mmdeploy names its own class output so)
FINAL_RESERVED_NAMES = RESERVED_NAMES | {contract.RAW_LABELS}


@dataclass
class FinalSpec:
    rows: str | None = None  # one output [B, K, W] of detection rows
    columns: str = (
        "xyxy,score,class"  # the values of a row, in order; extra trailing values are ignored
    )
    labels: str | None = None  # a separate class output [B, K] (the rows then hold no class)
    detr_boxes: str | None = None  # pred_boxes [B, Q, 4], normalised cxcywh
    detr_logits: str | None = None  # logits [B, Q, C(+1)]
    detr_activation: str = "softmax"  # softmax (no-object last column) | sigmoid
    num_classes: int | None = None  # when neither class names nor the model's metadata say

    @property
    def requested(self) -> bool:
        return bool(self.rows or self.detr_boxes or self.detr_logits)

    def renamed(self, renames: dict[str, str]) -> FinalSpec:
        """The same spec with output names moved by :func:`free_reserved_names`."""
        fields = ("rows", "labels", "detr_boxes", "detr_logits")
        return replace(self, **{f: renames.get(getattr(self, f), getattr(self, f)) for f in fields})


def parse_columns(text: str, separate_labels: bool) -> dict[str, int]:
    """'xyxy,score,class' -> {'box': 0, 'box_format': xyxy, 'score': 4, 'class': 5} (value
    offsets)."""
    offsets, pos = {}, 0
    for token in (t.strip() for t in text.split(",")):
        if token in BOX_TOKENS and "box" not in offsets:
            offsets["box"], offsets["box_format"] = pos, token
            pos += 4
        elif token in ("score", "class") and token not in offsets:
            offsets[token] = pos
            pos += 1
        else:
            raise InputError(
                f"--final-columns '{text}': '{token}' is not one of xyxy, cxcywh, score, class "
                "(each once)"
            )
    need = {"box", "score"} | (set() if separate_labels else {"class"})
    if not need <= set(offsets) or (separate_labels and "class" in offsets):
        raise InputError(
            f"--final-columns '{text}' must name a box (xyxy or cxcywh), score"
            + (" (the class comes from --final-labels)" if separate_labels else " and class")
        )
    offsets["width"] = pos
    return offsets


def convert_final(
    model, final: FinalSpec, spec: ByoSpec, height: int, width: int
) -> tuple[int | None, bool]:
    """Expose the end-to-end raw form (boxes, scores[, labels]); returns (classes if known, has
    labels)."""
    import onnx

    model.CopyFrom(onnx.shape_inference.infer_shapes(model))
    b = NodeBuilder("byo_", model.graph)
    if final.rows and (final.detr_boxes or final.detr_logits):
        raise InputError("give either --final (rows) or --detr-boxes/--detr-logits, not both")
    if final.rows:
        boxes, scores, labels, classes, (batch, n) = _rows(b, model, final, spec)
        box_format, normalized = (
            parse_columns(final.columns, bool(final.labels))["box_format"],
            spec.normalized,
        )
    else:
        if not (final.detr_boxes and final.detr_logits):
            raise InputError(
                "a DETR-style model needs both --detr-boxes (pred_boxes) and --detr-logits (logits)"
            )
        boxes, scores, labels, classes, (batch, n) = _detr(b, model, final, output_shape)
        box_format, normalized = "cxcywh", True
    head = Head(boxes, scores, n, classes, box_format, normalized)
    tensors = {
        contract.RAW_BOXES: boxes_to_pixels_xyxy(b, head, height, width),
        contract.RAW_SCORES: scores,
    }
    if labels is not None:
        tensors[contract.RAW_LABELS] = labels
    _expose(model, b, tensors, batch, n, 1 if labels is not None else classes)
    return classes, labels is not None


def _expose(model, b, tensors: dict[str, str], batch, n: int, c: int) -> None:
    """Make ``tensors`` the graph outputs with their static shapes stated (shape inference loses
    them through the exporters' TopK/Gather post-processing, and the selection needs static N,
    C)."""
    import onnx

    from edgedet.onnx.graph import toposort

    del model.graph.output[:]
    batch = batch if isinstance(batch, int) and batch > 0 else "batch"
    shapes = {
        contract.RAW_BOXES: (onnx.TensorProto.FLOAT, [batch, n, 4]),
        contract.RAW_SCORES: (onnx.TensorProto.FLOAT, [batch, n, c]),
        contract.RAW_LABELS: (onnx.TensorProto.INT64, [batch, n]),
    }
    for name, src in tensors.items():
        model.graph.node.append(b.helper.make_node("Identity", [src], [name], name=f"byo_{name}"))
        model.graph.output.append(b.helper.make_tensor_value_info(name, *shapes[name]))
    toposort(model)


def _batched(b, name: str, shape: list, rank: int) -> tuple[str, list]:
    """[K, ...] without a batch axis -> [1, K, ...]; dynamic non-batch dims are refused."""
    if len(shape) == rank - 1:
        name, shape = b.op("Unsqueeze", [name, b.const([0])]), [1] + shape
    if len(shape) != rank or any(d is None for d in shape[1:]):
        raise InputError(
            f"output '{name}' has shape {shape}; expected rank {rank} with static sizes past the"
            " batch (pin the input size with --imgsz)"
        )
    return name, shape


def _rows(b, model, final: FinalSpec, spec: ByoSpec):
    cols = parse_columns(final.columns, bool(final.labels))
    t, shape = _batched(b, final.rows, output_shape(model, final.rows), 3)
    if shape[2] < cols["width"]:
        raise InputError(
            f"output '{final.rows}' has {shape[2]} values per row; --final-columns "
            f"'{final.columns}' needs {cols['width']}"
        )
    t = _float(b, model, final.rows, t)
    boxes = b.slice_last(t, cols["box"], cols["box"] + 4)
    scores = b.slice_last(t, cols["score"], cols["score"] + 1)  # [B, K, 1]
    if final.labels:
        lab, lshape = _batched(b, final.labels, output_shape(model, final.labels), 2)
        if lshape[1:] == [shape[1], 1]:
            lab = b.op("Squeeze", [lab, b.const([2])])
        elif lshape[1:] != [shape[1]]:
            raise InputError(
                f"labels '{final.labels}' have shape {lshape}; expected [B, {shape[1]}]"
            )
    else:
        lab = b.op("Squeeze", [b.slice_last(t, cols["class"], cols["class"] + 1), b.const([2])])
    # float class ids -> int64
    labels = b.op("Cast", [b.op("Round", [_float(b, model, None, lab)])], to=7)
    return boxes, scores, labels, _metadata_classes(model), shape[:2]


def _detr(b, model, final: FinalSpec, output_shape):
    if final.detr_activation not in DETR_ACTIVATIONS:
        raise InputError(
            f"--detr-activation {final.detr_activation} is not one of {', '.join(DETR_ACTIVATIONS)}"
        )
    boxes, bshape = _batched(b, final.detr_boxes, output_shape(model, final.detr_boxes), 3)
    logits, lshape = _batched(b, final.detr_logits, output_shape(model, final.detr_logits), 3)
    if bshape[2] != 4 or lshape[1] != bshape[1]:
        raise InputError(
            f"'{final.detr_boxes}' {bshape} and '{final.detr_logits}' {lshape} are not "
            "[B, Q, 4] and [B, Q, C] for the same Q queries"
        )
    boxes, logits = (
        _float(b, model, final.detr_boxes, boxes),
        _float(b, model, final.detr_logits, logits),
    )
    if final.detr_activation == "sigmoid":
        return boxes, b.op("Sigmoid", [logits]), None, lshape[2], bshape[:2]
    if lshape[2] < 2:
        raise InputError(
            f"softmax logits '{final.detr_logits}' {lshape} need C classes + the no-object column"
        )
    probs = b.slice_last(b.op("Softmax", [logits], axis=-1), 0, lshape[2] - 1)  # drop "no object"
    from edgedet.onnx.tools import opset_of

    if opset_of(model) >= 18:  # ReduceMax takes its axes as an input from opset 18
        # each query's best real class
        scores = b.op("ReduceMax", [probs, b.const([-1])], keepdims=1)
    else:
        scores = b.op("ReduceMax", [probs], axes=[-1], keepdims=1)
    # first of equal maxima
    labels = b.op("ArgMax", [probs], axis=-1, keepdims=0, select_last_index=0)
    return boxes, scores, labels, lshape[2] - 1, bshape[:2]


def _float(b, model, name: str | None, tensor: str) -> str:
    """float16 / double / integer outputs as float32 (the selection computes in float32)."""
    import onnx

    if name is not None:
        types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
        if types.get(name) == onnx.TensorProto.FLOAT:
            return tensor
    return b.op("Cast", [tensor], to=onnx.TensorProto.FLOAT)


def _metadata_classes(model) -> int | None:
    """Ultralytics writes its class names as metadata ``names`` = "{0: 'person', ...}"."""
    names = metadata_class_names(model)
    return len(names) if names else None


def recognise_final(model) -> tuple[FinalSpec, list[str]] | None:
    """Guess whether ``model``'s outputs are already final detections, for an inspect mode: returns
    the FinalSpec and the attach-nms flags that say so, or None. Recognised: HF-style ``logits`` +
    ``pred_boxes`` (softmax when logits have one more column than the metadata's classes or no
    metadata; the flag says which was assumed), and one output [B, K, 6] (Ultralytics end2end:
    metadata ``end2end: True``, or any [B, K <= 3840, 6] output); RT-DETR (metadata ``head:
    RTDETRDecoder``) rows are normalised cxcywh."""
    shapes = {
        o.name: [
            d.dim_value if d.HasField("dim_value") else None for d in o.type.tensor_type.shape.dim
        ]
        for o in model.graph.output
    }
    meta = {p.key: p.value for p in model.metadata_props}
    if "logits" in shapes and "pred_boxes" in shapes:
        classes = len(metadata_class_names(model))
        width = (shapes["logits"] or [None])[-1]
        activation = "sigmoid" if classes and width == classes else "softmax"
        return (
            FinalSpec(detr_boxes="pred_boxes", detr_logits="logits", detr_activation=activation),
            [
                "--detr-boxes",
                "pred_boxes",
                "--detr-logits",
                "logits",
                "--detr-activation",
                activation,
            ],
        )
    rows = [n for n, s in shapes.items() if len(s) == 3 and s[2] == 6 and s[1] and s[1] <= 3840]
    if len(shapes) == 1 and len(rows) == 1:
        if "RTDETR" in meta.get("head", "") or "rtdetr" in meta.get("description", "").lower():
            return (
                FinalSpec(rows=rows[0], columns="cxcywh,score,class"),
                ["--final", rows[0], "--final-columns", "cxcywh,score,class", "--normalized"],
            )
        return FinalSpec(rows=rows[0]), ["--final", rows[0]]
    return None


def metadata_class_names(model) -> list[str]:
    for prop in model.metadata_props:
        if prop.key == "names":
            try:
                d = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            if isinstance(d, dict) and all(isinstance(k, int) for k in d):
                return [str(d[i]) for i in sorted(d)]
    return []


def attach_final(
    model,
    final: FinalSpec,
    spec: ByoSpec,
    params: NMSParams,
    in_graph: bool = True,
    runtime_threshold: bool = False,
):
    """The whole conversion on a loaded ModelProto; returns (model, info for the manifest)."""
    from edgedet.onnx.graph import toposort

    names = spec.class_names or metadata_class_names(model)
    model = upgrade_opset(model)
    dropped = drop_initializer_inputs(model)
    # Ultralytics names its input ``images``, mmdeploy its class output ``labels``: names we write
    final = final.renamed(free_reserved_names(model, FINAL_RESERVED_NAMES))
    old_input, height, width, elem = image_input(model, spec.imgsz)
    prepend_input_transform(model, old_input, spec, elem)
    classes, has_labels = convert_final(model, final, spec, height, width)
    toposort(model)
    classes = classes or final.num_classes or len(names) or None
    if not classes:
        raise InputError(
            "the model does not say how many classes it has: pass --class-names FILE or"
            " --num-classes N"
        )
    if in_graph:
        from edgedet.onnx.nms.topk import attach_topk

        model = attach_topk(
            model,
            params,
            labels=contract.RAW_LABELS if has_labels else None,
            runtime_threshold=runtime_threshold,
        )
    elif runtime_threshold:
        raise InputError("--runtime-thresholds needs the selection in the graph (not --nms none)")
    return model, {
        "height": height,
        "width": width,
        "classes": classes,
        "class_names": names,
        "initializer_inputs_dropped": dropped,
    }


def attach_final_file(
    source,
    output,
    final: FinalSpec,
    spec: ByoSpec,
    params: NMSParams,
    in_graph: bool = True,
    runtime_threshold: bool = False,
):
    """Read ``source``, convert it, write ``output`` + manifest atomically; returns the Manifest."""
    from edgedet.fileio import check_output, sha256_file
    from edgedet.manifest import InputInfo, Manifest, write_onnx_artifact
    from edgedet.onnx.tools import check_model, io_specs, load_onnx, simplify

    output = check_output(output, [source])
    model, info = attach_final(load_onnx(source), final, spec, params, in_graph, runtime_threshold)
    model = simplify(model)
    check_model(model, str(output))
    _, outputs = io_specs(model)
    names = info["class_names"] or [f"class{i}" for i in range(info["classes"])]
    if len(names) != info["classes"]:
        raise InputError(f"{len(names)} class names given, the model has {info['classes']} classes")
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    kind = contract.output_kind([o.name for o in outputs])
    manifest = Manifest(
        family="byo",
        model=str(source).rsplit("/", 1)[-1],
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
        ),
        output_kind=kind,
        outputs=outputs,
        nms=params,
        nms_where="graph" if in_graph else "host",
        nms_implementation=contract.END_TO_END,
        normalization={
            "input_scale": spec.input_scale,
            "mean": list(spec.mean or ()),
            "std": list(spec.std or ()),
            "in_graph": True,
        },
        source={"onnx": str(source), "sha256": sha256_file(source)},
        category_ids=list(range(1, len(names) + 1)),
        notes={
            "nms": "none (end-to-end head): score threshold + top-k",
            "byo_final": dict(final.__dict__),
            "initializer_inputs_dropped": info["initializer_inputs_dropped"],
        },
    )
    write_onnx_artifact(model, output, manifest)  # artifact + manifest as one transaction
    return manifest
