"""`edgedet attach-nms`: a third-party detector's raw outputs -> the edgedet contract + NMS."""

from __future__ import annotations

import click

from edgedet.cli.common import read_class_names
from edgedet.contract import NMS_IMPLEMENTATIONS
from edgedet.errors import InputError, require


def _floats(text: str | None, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{name} takes three comma-separated numbers such as 0.485,0.456,0.406") from None
    if len(values) != 3:
        raise InputError(f"{name} takes three values (R,G,B), got {len(values)}")
    return values


@click.command("attach-nms")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--boxes", help="Output holding boxes [B,N,4] / [B,4,N] / [N,4].")
@click.option("--scores", help="Output holding scores [B,N,C] / [B,C,N].")
@click.option("--combined", help="One output with 4 box values then the class scores per candidate (YOLO style).")
@click.option("--objectness", is_flag=True, help="The combined output has an objectness column after the box.")
@click.option("--box-format", type=click.Choice(["xyxy", "cxcywh"]), default="xyxy", show_default=True)
@click.option("--normalized", is_flag=True, help="Boxes are in 0..1 of the input size.")
@click.option("--background-class", type=int, default=-1, show_default=True)
@click.option("--score-activation", is_flag=True, help="Scores are logits: apply sigmoid.")
@click.option("--softmax", is_flag=True, help="Scores are logits over classes: apply softmax.")
@click.option("--imgsz", type=int, help="Pin dynamic input height/width.")
@click.option("--input-scale", type=float, default=1.0, show_default=True, help="255 if the model takes 0..255 pixels.")
@click.option("--mean", help="R,G,B mean the model subtracts (in its input scale).")
@click.option("--std", help="R,G,B std the model divides by.")
@click.option("--class-names", type=click.Path(dir_okay=False), help="Text file, one class name per line.")
@click.option("--nms", "implementation", type=click.Choice(NMS_IMPLEMENTATIONS), default="edgedet", show_default=True,
              help="Where NMS runs (see `edgedet export --help`).")
@click.option("--score-threshold", type=float, default=0.25, show_default=True)
@click.option("--iou-threshold", type=float, default=0.45, show_default=True)
@click.option("--max-det", type=int, default=100, show_default=True)
@click.option("--top-k", type=int, default=1000, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
def attach_cmd(model, boxes, scores, combined, objectness, box_format, normalized, background_class, score_activation,
               softmax, imgsz, input_scale, mean, std, class_names, implementation, score_threshold, iou_threshold,
               max_det, top_k, output):
    """Make MODEL (any ONNX detector) follow the edgedet contract so it quantises, builds and runs like ours."""
    require("onnx", "export", "edgedet attach-nms")
    from edgedet.nms.params import NMSParams
    from exporters.byo import ByoSpec, attach_file

    if score_activation and softmax:
        raise InputError("choose one of --score-activation (sigmoid) and --softmax")
    names = []
    if class_names:
        names = read_class_names(class_names)
    spec = ByoSpec(boxes, scores, combined, box_format, normalized,
                   "sigmoid" if score_activation else "softmax" if softmax else "none", objectness, background_class,
                   imgsz, input_scale, _floats(mean, "--mean"), _floats(std, "--std"), names)
    nms = NMSParams(score_threshold=score_threshold, iou_threshold=iou_threshold, max_output_boxes=max_det, top_k=top_k)
    m = attach_file(model, output, spec, nms, implementation)
    click.echo(f"wrote {output}: input {list(m.input.shape)}, {m.num_classes} classes, outputs "
               f"{[o.name for o in m.outputs]}, NMS {m.nms_where}")
