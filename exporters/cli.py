"""The torch tier's commands, `edgedet export` and `edgedet demo` (edgedet/cli/main.py names them
lazily).

They live here, not in edgedet/cli, because they need PyTorch:
the runtime and the ONNX tier never import this package.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgedet.cli.common import FRACTION, NON_NEGATIVE, POSITIVE, echo_progress
from edgedet.contract import NMS_IMPLEMENTATIONS
from edgedet.errors import require


@click.command("export")
@click.option(
    "--model", "model_name", default="nano", show_default=True, help="Model name (see --list)."
)
@click.option(
    "--weights", type=click.Path(dir_okay=False), help="state_dict file; random init without it."
)
@click.option(
    "--imgsz",
    type=click.IntRange(32, 4096),
    help="Square input size (multiple of 32); family default otherwise.",
)
@click.option("--batch", type=POSITIVE, default=1, show_default=True, help="Fixed batch size.")
@click.option("--dynamic-batch", is_flag=True, help="Dynamic batch dimension instead of --batch.")
@click.option(
    "--nms",
    type=click.Choice(NMS_IMPLEMENTATIONS),
    default="edgedet",
    show_default=True,
    help=(
        "edgedet: our EdgeDetNMS op (TensorRT plugin; ONNX Runtime runs its standard-op function); "
        "graph: standard ONNX ops; efficient: NVIDIA EfficientNMS_TRT (TensorRT only); "
        "none: raw boxes/scores, NMS on the host."
    ),
)
@click.option(
    "--runtime-thresholds",
    is_flag=True,
    help="--nms edgedet: score/IoU thresholds become graph inputs, changeable at run time.",
)
@click.option("--opset", type=int, default=17, show_default=True)
@click.option(
    "--uint8", "uint8_input", is_flag=True, help="Take uint8 0..255 input instead of float32 0..1."
)
@click.option(
    "--num-classes", type=POSITIVE, help="Classes of a custom-trained head (torchvision families)."
)
@click.option("--score-threshold", type=FRACTION, help="Override the family's NMS score threshold.")
@click.option("--iou-threshold", type=FRACTION, help="Override the family's NMS IoU threshold.")
@click.option("--max-det", type=POSITIVE, help="Override K, the number of output detections.")
@click.option("--top-k", type=NON_NEGATIVE, help="Override the pre-NMS candidate count.")
@click.option(
    "--exporter",
    type=click.Choice(["auto", "torchscript", "dynamo"]),
    default="auto",
    show_default=True,
)
@click.option("--no-simplify", is_flag=True, help="Skip onnxslim.")
@click.option(
    "--no-verify", is_flag=True, help="Skip the ONNX Runtime vs torch check of the raw graph."
)
@click.option("--list", "list_models", is_flag=True, help="List exportable models and exit.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .onnx path.")
def export_cmd(
    model_name,
    weights,
    imgsz,
    batch,
    dynamic_batch,
    nms,
    runtime_thresholds,
    opset,
    uint8_input,
    num_classes,
    score_threshold,
    iou_threshold,
    max_det,
    top_k,
    exporter,
    no_simplify,
    no_verify,
    list_models,
    output,
):
    """Export a detector to ONNX (fixed shapes, NMS in graph) with a sidecar manifest."""
    from exporters.registry import get_model
    from exporters.registry import list_models as registered

    if list_models:  # read from the family modules' source: imports neither torch nor any family
        entries = registered()
        width = max(len(e.name) for e in entries) + 2
        for entry in entries:
            click.echo(f"{entry.name:{width}s} {entry.family:13s} {entry.description}")
        return
    get_model(model_name)  # unknown names fail before anything slow
    require("torch", "export", "edgedet export")
    from exporters.pipeline import ExportOptions, export

    if not output:
        raise click.UsageError("missing -o/--output (the .onnx file to write)")
    opts = ExportOptions(
        model=model_name,
        weights=weights,
        imgsz=imgsz,
        batch=batch,
        dynamic_batch=dynamic_batch,
        nms=nms,
        runtime_thresholds=runtime_thresholds,
        opset=opset,
        input_dtype="uint8" if uint8_input else "float32",
        num_classes=num_classes,
        exporter=exporter,
        simplify=not no_simplify,
        verify=not no_verify,
        nms_overrides={
            "score_threshold": score_threshold,
            "iou_threshold": iou_threshold,
            "max_output_boxes": max_det,
            "top_k": top_k,
        },
    )
    result = export(opts, output, progress=echo_progress)
    if not weights:  # after the run, so that a refused command prints only its one error line
        if model_name == "nano":
            click.echo("note: using nano's shipped weights", err=True)
        else:
            click.echo(
                f"note: no --weights given: {model_name} is randomly initialised (fine for "
                "latency and parity checks, useless for detections)",
                err=True,
            )
    m = result.manifest
    total = sum(result.timings.values())
    click.echo(
        f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB, opset {m.notes['opset']},"
        f" input {list(m.input.shape)} {m.input.dtype}, outputs {[o.name for o in m.outputs]}, NMS"
        f" {m.nms_where}"
        + (f" ({m.nms_implementation})" if m.nms_where == "graph" else "")
        + f") in {total:.1f} s"
    )
    v = result.verification
    if "detections" in v and not v["detections"].get("verified", True):
        click.echo(
            "not verified: torch and ONNX Runtime both gave 0 detections on the check image, so"
            " nothing was compared"
            + (" (random weights: pass --weights to check real detections)" if not weights else "")
        )
    elif v and "detections" not in v and all(x.get("constant") for x in v.values()):
        click.echo(
            "not verified: torch's raw outputs are constant on the check image, so a match proves"
            " nothing"
        )
    elif "detections" in v:  # NMS inside the network: detection sets were compared
        d = v["detections"]
        click.echo(
            f"verified: ONNX Runtime matches torch on {d['matched_a']:.0%} of {d['detections_a']}"
            f" detections (IoU >= {d['iou_threshold']}, max score diff"
            f" {d['score_delta']['max']:.2g})"
        )
    elif v:
        worst = max(x["max_abs"] for x in v.values())
        click.echo(
            f"verified: ONNX Runtime matches torch on the raw outputs (max abs diff {worst:.2g})"
        )


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-output", show_default=True)
@click.option("--val-size", type=POSITIVE, help="Validation images (default: the standard split).")
@click.option(
    "--iters",
    type=POSITIVE,
    default=50,
    show_default=True,
    help="Benchmark iterations per variant.",
)
def demo_cmd(out, val_size, iters):
    """Run nano through export -> ONNX Runtime, report mAP and latency in OUT/report.md."""
    require("torch", "export", "edgedet demo")
    from edgedet.fileio import check_writable
    from exporters.demo import DemoConfig, run_demo

    check_writable(Path(out) / "report.md")  # an unwritable folder fails now, not after the run

    run_demo(DemoConfig(Path(out), val_size, iters), say=lambda m: click.echo(m, err=True))
    click.echo((Path(out) / "report.md").read_text())
