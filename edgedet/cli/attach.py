"""`edgedet attach-nms`: a third-party detector's raw outputs -> the edgedet contract + NMS."""

from __future__ import annotations

import click

from edgedet.cli.attach_final import final_options, requested, run_final
from edgedet.cli.common import read_class_names
from edgedet.contract import NMS_IMPLEMENTATIONS
from edgedet.errors import InputError, require


def _floats(text: str | None, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(
            f"{name} takes three comma-separated numbers such as 0.485,0.456,0.406"
        ) from None
    if len(values) != 3:
        raise InputError(f"{name} takes three values (R,G,B), got {len(values)}")
    return values


def _imgsz(text: str | None) -> tuple[int, int] | None:
    """``640`` (square), ``480x640`` or ``480,640`` (height x width)."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) <= 0:
        raise InputError(
            f"--imgsz takes one size or HEIGHTxWIDTH such as 640 or 480x640, got '{text}'"
        )
    return (values[0], values[-1])


def _strides(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) <= 0:
        raise InputError(
            f"--strides takes comma-separated feature strides such as 8,16,32, got '{text}'"
        )
    return values


def _variances(text: str) -> tuple[float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 2:
        raise InputError(
            f"--variances takes two numbers (centre, size) such as 0.1,0.2, got '{text}'"
        )
    return values


@click.command("attach-nms")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--boxes", help="Output holding boxes [B,N,4] / [B,4,N] / [N,4].")
@click.option("--scores", help="Output holding scores [B,N,C] / [B,C,N].")
@click.option(
    "--combined",
    help="One output with 4 box values then the class scores per candidate (YOLO style).",
)
@click.option(
    "--objectness", is_flag=True, help="The combined output has an objectness column after the box."
)
@click.option(
    "--box-format", type=click.Choice(["xyxy", "cxcywh"]), default="xyxy", show_default=True
)
@click.option("--normalized", is_flag=True, help="Boxes are in 0..1 of the input size.")
@click.option("--background-class", type=int, default=-1, show_default=True)
@click.option("--score-activation", is_flag=True, help="Scores are logits: apply sigmoid.")
@click.option("--softmax", is_flag=True, help="Scores are logits over classes: apply softmax.")
@click.option(
    "--imgsz", help="Pin dynamic input height/width: 640, or HEIGHTxWIDTH such as 480x640."
)
@click.option(
    "--decode",
    type=click.Choice(["none", "yolox", "ltrb", "ssd"]),
    default="none",
    show_default=True,
    help=(
        "Raw head decoded in the graph: yolox (grid offsets, log sizes) or ltrb (YOLOv6/v8"
        " distances) on --combined; ssd (deltas against --anchors) on --boxes."
    ),
)
@click.option(
    "--strides",
    default="8,16,32",
    show_default=True,
    help="Feature strides of a raw grid head (--decode).",
)
@click.option(
    "--anchors",
    type=click.Path(dir_okay=False),
    help="--decode ssd: prior boxes, .npy or text, N rows cx cy w h.",
)
@click.option(
    "--variances",
    default="0.1,0.2",
    show_default=True,
    help="--decode ssd: centre and size variances.",
)
@click.option(
    "--bgr",
    is_flag=True,
    help="The model takes BGR channels (reversed inside the graph; edgedet feeds RGB).",
)
@click.option(
    "--resize",
    type=click.Choice(["letterbox", "stretch"]),
    default="letterbox",
    show_default=True,
    help="How the model's own pre-processing fits images: letterbox (keep aspect) or stretch.",
)
@click.option(
    "--padding",
    type=click.Choice(["center", "top-left"]),
    default="center",
    show_default=True,
    help="Where letterbox padding goes (YOLOX pads right/bottom: top-left).",
)
@click.option(
    "--no-check", is_flag=True, help="Skip the probe-image check of the converted outputs."
)
@click.option(
    "--inspect",
    is_flag=True,
    help="Print the input, each output's guessed role and the flags to use; write nothing.",
)
@click.option(
    "--input-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="255 if the model takes 0..255 pixels.",
)
@click.option("--mean", help="R,G,B mean the model subtracts (in its input scale).")
@click.option("--std", help="R,G,B std the model divides by.")
@click.option(
    "--class-names", type=click.Path(dir_okay=False), help="Text file, one class name per line."
)
@click.option(
    "--nms",
    "implementation",
    type=click.Choice(NMS_IMPLEMENTATIONS),
    default="edgedet",
    show_default=True,
    help="Where NMS runs (see `edgedet export --help`).",
)
@click.option("--score-threshold", type=float, default=0.25, show_default=True)
@click.option("--iou-threshold", type=float, default=0.45, show_default=True)
@click.option("--max-det", type=int, default=100, show_default=True)
@click.option("--top-k", type=int, default=1000, show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="The converted model (required unless --inspect).",
)
@final_options
def attach_cmd(
    model,
    boxes,
    scores,
    combined,
    objectness,
    box_format,
    normalized,
    background_class,
    score_activation,
    softmax,
    imgsz,
    decode,
    strides,
    anchors,
    variances,
    bgr,
    resize,
    padding,
    no_check,
    inspect,
    input_scale,
    mean,
    std,
    class_names,
    implementation,
    score_threshold,
    iou_threshold,
    max_det,
    top_k,
    output,
    **final,
):
    """Make MODEL (any ONNX detector) follow the edgedet contract so it quantises, builds and runs
    like ours."""
    require("onnx", "build", "edgedet attach-nms")
    from edgedet.nms.params import NMSParams
    from edgedet.onnx.byo.attach import ByoSpec, attach_file

    if inspect:
        from edgedet.onnx.byo.inspect import inspect_model
        from edgedet.onnx.tools import load_onnx

        click.echo("\n".join(inspect_model(load_onnx(model)).lines(model)))
        return
    if not output:
        raise InputError("attach-nms needs -o OUTPUT.onnx (or --inspect to only look at the model)")
    if score_activation and softmax:
        raise InputError("choose one of --score-activation (sigmoid) and --softmax")
    names = []
    if class_names:
        names = read_class_names(class_names)
    spec = ByoSpec(
        boxes,
        scores,
        combined,
        box_format,
        normalized,
        "sigmoid" if score_activation else "softmax" if softmax else "none",
        objectness,
        background_class,
        _imgsz(imgsz),
        input_scale,
        _floats(mean, "--mean"),
        _floats(std, "--std"),
        names,
        decode,
        _strides(strides),
        anchors,
        _variances(variances),
        "BGR" if bgr else "RGB",
        resize,
        padding,
        not no_check,
    )
    if requested(final):  # outputs already final (end-to-end head): threshold + top-k, no NMS
        return run_final(
            model, output, spec, implementation, score_threshold, max_det, background_class, **final
        )
    nms = NMSParams(
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_output_boxes=max_det,
        top_k=top_k,
    )
    m = attach_file(model, output, spec, nms, implementation)
    fit = m.input.resize + (f", {m.input.padding} padding" if m.input.resize == "letterbox" else "")
    click.echo(
        f"wrote {output}: input {list(m.input.shape)} ({fit}), {m.num_classes} classes, "
        f"outputs {[o.name for o in m.outputs]}, NMS {m.nms_where}"
    )
    for note in attach_notes(m):
        click.echo(f"  note: {note}")


def attach_notes(m) -> list[str]:
    """What attach-nms changed that a user should know (from the manifest it wrote)."""
    notes = []
    renamed = m.notes.get("renamed_tensors") or {}
    if renamed:
        notes.append(
            "the model's own tensors "
            + ", ".join(f"'{k}' -> '{v}'" for k, v in renamed.items())
            + " were renamed (the contract uses those names)"
        )
    if m.precision.get("mode") == "fp16":
        notes.append(
            "FP16 model kept FP16 inside; input and outputs are float32 (" + m.precision["io"] + ")"
        )
    if m.notes.get("byo", {}).get("background_class", -1) >= 0:
        notes.append(
            f"background column {m.notes['byo']['background_class']} dropped; class ids follow the"
            f" class names ({', '.join(m.class_names[:3])}{', ...' if m.num_classes > 3 else ''})"
        )
    probe = m.notes.get("probe") or {}
    if probe.get("checked"):
        notes.append(
            f"checked on a probe image: scores {probe['scores'][0]}..{probe['scores'][1]}, boxes"
            f" within {probe['box_extent_px']} px"
        )
    return notes
