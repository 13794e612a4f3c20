"""Look inside a third-party detector: what its input and outputs are, and the attach-nms flags.

``inspect_model`` runs the file once on a probe image in ONNX Runtime and guesses each output's
role (combined YOLO head, boxes, scores, raw grid, normalised or pixel boxes, logits or
probabilities, softmax with a background column). ``check_raw_outputs`` runs a converted head
the same way and refuses outputs that cannot be detections (edgedet.output_checks), so attach-nms
never writes a file that would run as garbage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from edgedet.errors import InputError, first_line

PROBE_SEED = 0  # the probe image: uniform noise in 0..1, the same on every run


def probe_image(shape, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(PROBE_SEED).random(shape, dtype=np.float32).astype(dtype)


def run_once(model, names: list[str]) -> dict[str, np.ndarray]:
    """Run ``model`` (one image input, dynamic dims taken as 1 / 640) on the probe image."""
    import onnx

    from edgedet.errors import require

    ort = require("onnxruntime", "ort", "Checking a converted model")
    inp = model.graph.input[0]
    shape = [
        d.dim_value if d.dim_value > 0 else (1 if i == 0 else 640)
        for i, d in enumerate(inp.type.tensor_type.shape.dim)
    ]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        return dict(zip(names, sess.run(names, {inp.name: probe_image(shape, dtype)})))
    except Exception as exc:  # the model itself is the user's: say why we could not run it
        why = first_line(exc, 200)
        raise InputError(f"ONNX Runtime cannot run the model to read its outputs ({why})") from None


def check_raw_outputs(model, spec, height: int, width: int) -> dict:
    """Run the converted raw head (outputs ``boxes``/``scores``) on the probe image; InputError
    naming the attach-nms flag when the outputs cannot be detections. Returns a summary."""
    from edgedet import contract
    from edgedet.output_checks import raw_output_problems

    try:
        out = run_once(model, [contract.RAW_BOXES, contract.RAW_SCORES])
    # e.g. a custom op ONNX Runtime lacks: the file may still build in TensorRT
    except InputError as exc:
        warnings.warn(f"attach-nms could not check the converted outputs: {exc}", stacklevel=3)
        return {"checked": False, "why": str(exc)}
    boxes, scores = out[contract.RAW_BOXES], out[contract.RAW_SCORES]
    problems = raw_output_problems(boxes, scores, height, width)
    if problems:
        p = problems[0]
        fix = f"add {p.flag}" if p.flag else "check the model"
        if (
            p.what in ("normalized", "undecoded")
            and spec.decode == "none"
            and _is_grid(boxes.shape[1], height, width)
        ):
            fix = (
                f"the {boxes.shape[1]} candidates are exactly the cells of a stride 8/16/32 grid: a"
                " raw grid head; add --decode yolox (offsets and log sizes) or --decode ltrb"
                " (distances)"
            )
        raise InputError(
            f"the converted outputs do not look like detections on a probe image: {p.message};"
            f" {fix} (`edgedet attach-nms MODEL --inspect` shows what it found; --no-check skips"
            " this check)"
        )
    return {
        "checked": True,
        "image": f"uniform noise 0..1, seed {PROBE_SEED}",
        "scores": [round(float(scores.min()), 4), round(float(scores.max()), 4)],
        "box_extent_px": round(float(np.percentile(np.abs(boxes), 99)), 1),
    }


def _is_grid(n: int, height: int, width: int) -> bool:
    from edgedet.onnx.byo.decode import grid_cells

    return len(grid_cells(height, width, (8, 16, 32))[0]) == n


@dataclass
class OutputGuess:
    name: str
    shape: list
    dtype: str
    role: str = "unknown"
    notes: list[str] = field(default_factory=list)


@dataclass
class Inspection:
    input_name: str
    input_shape: list
    input_dtype: str
    outputs: list[OutputGuess]
    flags: list[str]
    notes: list[str]

    def lines(self, path: str) -> list[str]:
        out = [f"input  {self.input_name} {self.input_shape} {self.input_dtype}"]
        for o in self.outputs:
            notes = f" ({'; '.join(o.notes)})" if o.notes else ""
            out.append(f"output {o.name} {o.shape} {o.dtype}: {o.role}{notes}")
        out += [f"note   {n}" for n in self.notes]
        out.append(
            "try    edgedet attach-nms " + " ".join([path, *self.flags, "-o", _suggest_out(path)])
        )
        return out


def _suggest_out(path: str) -> str:
    stem = path[:-5] if path.endswith(".onnx") else path
    return f"{stem}.edgedet.onnx"


def inspect_model(model) -> Inspection:
    """Guess what each output of a third-party detector holds and the attach-nms flags it needs."""
    import onnx

    from edgedet.onnx.byo.attach import drop_initializer_inputs, upgrade_opset

    model = upgrade_opset(model)
    drop_initializer_inputs(model)
    if len(model.graph.input) != 1:
        raise InputError(
            f"the model has {len(model.graph.input)} inputs; edgedet needs exactly one image input"
        )
    inp = model.graph.input[0]
    dims = [
        d.dim_value if d.dim_value > 0 else (d.dim_param or "?")
        for d in inp.type.tensor_type.shape.dim
    ]
    in_type = onnx.TensorProto.DataType.Name(inp.type.tensor_type.elem_type).lower()
    names = [o.name for o in model.graph.output]
    values = run_once(model, names)
    outputs = [OutputGuess(n, list(v.shape), str(v.dtype)) for n, v in values.items()]
    flags, notes = [], []
    if len(dims) == 4 and not all(isinstance(d, int) for d in dims[2:]):
        flags += ["--imgsz", "640"]
        notes.append(
            "the input height/width are dynamic: pin them with --imgsz SIZE or HEIGHTxWIDTH "
            "(640 assumed here)"
        )
    height, width = (
        (dims[2], dims[3])
        if len(dims) == 4 and all(isinstance(d, int) for d in dims[2:])
        else (640, 640)
    )
    if in_type == "float16":
        notes.append(
            "FP16 model: the edgedet input stays float32 0..1 and is cast to float16 after"
            " normalising"
        )
    flags += _guess_head(outputs, values, height, width, notes)
    notes.append(
        "pre-processing cannot be read from the graph: add --input-scale 255 if the model takes"
        " 0..255 pixels, --mean/--std if it normalises outside the graph, --bgr, --resize stretch,"
        " --padding top-left as its own code does"
    )
    return Inspection(inp.name, dims, in_type, outputs, flags, notes)


def _guess_head(
    outputs: list[OutputGuess], values: dict, height: int, width: int, notes: list[str]
) -> list[str]:
    combined = [
        o
        for o in outputs
        if len(o.shape) == 3 and min(o.shape[1:]) >= 5 and max(o.shape[1:]) > 2 * min(o.shape[1:])
    ]
    boxes = [
        o
        for o in outputs
        if len(o.shape) in (2, 3, 4) and o.shape[-1] == 4 or (len(o.shape) == 3 and o.shape[1] == 4)
    ]
    if boxes:
        return _guess_split(boxes[0], outputs, values, height, width, notes)
    if combined:
        return _guess_combined(combined[0], values, height, width, notes)
    notes.append(
        "no output looks like boxes ([B, N, 4]) or a combined YOLO head ([B, 4+C, N]); "
        "attach-nms cannot read it"
    )
    return []


def _guess_combined(
    o: OutputGuess, values: dict, height: int, width: int, notes: list[str]
) -> list[str]:
    from edgedet.onnx.byo.decode import grid_cells

    first = o.shape[1] < o.shape[2]
    a = values[o.name].astype(np.float32)
    a = a.transpose(0, 2, 1) if first else a
    n, k = a.shape[1], a.shape[2]
    flags = ["--combined", o.name]
    extent = float(np.percentile(np.abs(a[..., :4]), 99))
    if extent < 0.05 * max(height, width) and len(grid_cells(height, width, (8, 16, 32))[0]) == n:
        # distances from cell centres are never negative; YOLOX's offsets and log sizes can be
        if a[..., :4].min() >= 0:
            o.role = (
                f"raw YOLOv6/v8-style grid head [B, N={n}, 4+C={k}]: (l, t, r, b) distances per"
                " cell, not boxes"
            )
            decode = "ltrb"
        else:
            o.role = (
                f"raw YOLOX-style grid head [B, N={n}, 5+C={k}]: offsets and log sizes per cell,"
                " not boxes"
            )
            decode = "yolox"
        o.notes.append("N matches strides 8, 16, 32")
        return flags + ["--decode", decode]
    layout = (
        "[B, 4+C, N] (YOLOv8/Ultralytics)"
        if first
        else "[B, N, 5+C] (YOLOv5: objectness after the box)"
    )
    o.role = (
        f"combined YOLO head {layout}, cxcywh boxes in"
        f" {'0..1' if extent <= 1.5 else 'input pixels'}"
    )
    flags += ["--box-format", "cxcywh"] + ([] if first else ["--objectness"])
    flags += ["--normalized"] if extent <= 1.5 else []
    s = a[..., 4:]
    if s.min() < 0 or s.max() > 1:
        o.notes.append("scores are logits")
        flags.append("--score-activation")
    return flags


def _guess_split(
    box: OutputGuess,
    outputs: list[OutputGuess],
    values: dict,
    height: int,
    width: int,
    notes: list[str],
) -> list[str]:
    b = values[box.name].astype(np.float32)
    n = b.shape[-2] if b.shape[-1] == 4 else b.shape[-1]
    extent = float(np.percentile(np.abs(b), 99))
    box.role = f"boxes, {'normalised 0..1' if extent <= 1.5 else 'input pixels'}"
    flags = ["--boxes", box.name] + (["--normalized"] if extent <= 1.5 else [])
    score = next((o for o in outputs if o is not box and n in o.shape[1:]), None)
    if score is None:
        notes.append(f"no output has the boxes' {n} candidates: cannot tell which holds the scores")
        return flags
    s = values[score.name].astype(np.float32)
    s = s if s.shape[-2] == n or s.ndim == 2 else s.transpose(0, 2, 1)
    flags += ["--scores", score.name]
    if s.min() < 0 or s.max() > 1:
        score.role = "scores (logits)"
        score.notes.append(
            "sigmoid assumed (YOLO, RetinaNet, FCOS); use --softmax instead for a softmax-trained "
            "(SSD-style) head"
        )
        flags.append("--score-activation")
        return flags
    softmaxed = s.shape[-1] >= 2 and np.allclose(s.sum(-1), 1.0, atol=1e-3)
    score.role = (
        "scores (probabilities, softmax over classes)" if softmaxed else "scores (probabilities)"
    )
    if softmaxed:  # SSD convention: softmax over (background, classes...), background first
        score.notes.append(
            "a softmax over classes usually includes a background column, SSD-style in column 0 "
            f"(column 0 averaged {float(s[..., 0].mean()):.2f} on the probe image)"
        )
        flags += ["--background-class", "0"]
    return flags
