"""`edgedet attach-nms` options for models whose outputs are already final detections (end-to-end
heads).

Kept apart from edgedet/cli/attach.py: that command applies :func:`final_options` and hands over to
:func:`run_final` when one of them is given (library: edgedet/onnx/byo/final.py).
"""

from __future__ import annotations

import click

from edgedet.errors import InputError, require


def final_options(f):
    """Decorator adding the end-to-end options to the attach-nms command."""
    options = [
        click.option(
            "--final",
            "final_rows",
            metavar="OUT",
            help=(
                "Output of final detection rows [B,K,W] (end-to-end head: Ultralytics end2end"
                " output0 [1,300,6], mmdeploy dets); no NMS is added, only score threshold + top-k."
            ),
        ),
        click.option(
            "--final-columns",
            default="xyxy,score,class",
            show_default=True,
            help="Order of the values in a --final row: a box (xyxy or cxcywh), score, class.",
        ),
        click.option(
            "--final-labels",
            metavar="OUT",
            help="Separate class output [B,K] for --final rows (mmdeploy).",
        ),
        click.option(
            "--detr-boxes", metavar="OUT", help="DETR-style pred_boxes [B,Q,4] (cx,cy,w,h in 0..1)."
        ),
        click.option("--detr-logits", metavar="OUT", help="DETR-style logits [B,Q,C(+1)]."),
        click.option(
            "--detr-activation",
            type=click.Choice(["softmax", "sigmoid"]),
            default="softmax",
            show_default=True,
            help=(
                "softmax: last column is 'no object', best class per query (DETR); "
                "sigmoid: every (query, class) pair (RT-DETR, D-FINE, Deformable DETR)."
            ),
        ),
        click.option(
            "--num-classes",
            type=int,
            help="Class count when neither --class-names nor the model says.",
        ),
        click.option(
            "--runtime-thresholds",
            is_flag=True,
            help=(
                "With --final / --detr-*: the score threshold becomes a graph input (set at run"
                " time)."
            ),
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def requested(final: dict) -> bool:
    return bool(final.get("final_rows") or final.get("detr_boxes") or final.get("detr_logits"))


def run_final(
    model: str,
    output: str,
    spec,
    implementation: str,
    score_threshold: float,
    max_det: int,
    background_class: int,
    **final,
) -> None:
    """attach-nms for final outputs: threshold + top-k in the graph (or on the host with --nms
    none)."""
    require("onnx", "build", "edgedet attach-nms")
    from edgedet.nms.topk import end_to_end_params
    from edgedet.onnx.byo.final import FinalSpec, attach_final_file

    fs = FinalSpec(
        final["final_rows"],
        final["final_columns"],
        final["final_labels"],
        final["detr_boxes"],
        final["detr_logits"],
        final["detr_activation"],
        final["num_classes"],
    )
    if implementation == "efficient":
        raise InputError(
            "final outputs need no NMS: --nms efficient does not apply (leave --nms as it is, "
            "or --nms none to select on the host)"
        )
    params = end_to_end_params(score_threshold, max_det, background_class)
    m = attach_final_file(
        model,
        output,
        fs,
        spec,
        params,
        in_graph=implementation != "none",
        runtime_threshold=final["runtime_thresholds"],
    )
    click.echo(
        f"wrote {output}: input {list(m.input.shape)}, {m.num_classes} classes, outputs"
        f" {[o.name for o in m.outputs]}, no NMS (end-to-end head), top-{max_det} selection on the"
        f" {m.nms_where}"
    )
