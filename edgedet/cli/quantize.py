"""`edgedet quantize` (FP16 / INT8 Q/DQ) and `edgedet check-qdq` (TensorRT Q/DQ rules, no TensorRT
needed)."""

from __future__ import annotations

import warnings

import click

from edgedet.cli.common import POSITIVE
from edgedet.errors import InputError, require


@click.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--fp16", "mode", flag_value="fp16", help="FP16 graph (I/O, NMS, decode stay FP32).")
@click.option("--int8", "mode", flag_value="int8", help="INT8 with explicit Q/DQ (needs --calib).")
@click.option(
    "--calib", "calib_dir", type=click.Path(file_okay=False), help="Folder of calibration images."
)
@click.option(
    "--calib-size", type=POSITIVE, help="Use an evenly spaced subset of this many images."
)
@click.option(
    "--method",
    type=click.Choice(["minmax", "entropy", "percentile"]),
    default="minmax",
    show_default=True,
)
@click.option(
    "--exclude",
    multiple=True,
    help="Keep nodes matching this glob (name or op type) in FP32; repeatable.",
)
@click.option(
    "--target",
    type=click.Choice(["tensorrt", "cpu"]),
    default="tensorrt",
    show_default=True,
    help="tensorrt: Q/DQ laid out for TensorRT; cpu: ONNX Runtime CPU recipe (not for TensorRT).",
)
@click.option(
    "--quantize-head",
    is_flag=True,
    help="Also quantise the last head convolutions (not recommended).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Calibration range cache (default ~/.cache/edgedet).",
)
@click.option(
    "--no-speed-check",
    is_flag=True,
    help="--target cpu: write even if INT8 is not faster than FP32 here.",
)
@click.option(
    "--sensitivity",
    "sensitivity",
    type=click.Path(dir_okay=False),
    help=(
        "--int8: write a per-layer sensitivity report (JSON, ranked; a .png beside it with"
        " matplotlib)."
    ),
)
@click.option(
    "--budget",
    type=float,
    help=(
        "--int8: keep the most sensitive layers out of INT8 until this fraction of FP32's"
        " detections match at IoU 0.9 on held-out images (e.g. 0.97)."
    ),
)
@click.option(
    "--holdout",
    "holdout_dir",
    type=click.Path(file_okay=False),
    help=(
        "Held-out images for --budget/--sensitivity (default: every 5th --calib image, not"
        " calibrated on)."
    ),
)
@click.option(
    "--sensitivity-mode",
    type=click.Choice(["alone", "exclude"]),
    default="alone",
    show_default=True,
    help=(
        "alone: each layer alone in INT8, rest FP32; exclude: each layer back to FP32 from full"
        " INT8."
    ),
)
@click.option(
    "--budget-map",
    type=float,
    help=(
        "--int8: keep layers out of INT8 until the mAP@.5:.95 drop vs FP32 on --map-data is at most"
        " this many points (e.g. 0.5)."
    ),
)
@click.option(
    "--map-data",
    type=click.Path(exists=True),
    help=(
        "Labelled set for --budget-map: COCO annotations.json (images/ beside it) or a YOLO folder."
    ),
)
@click.option(
    "--fallback",
    type=click.Choice(["fp16", "fp32"]),
    default="fp16",
    show_default=True,
    help=(
        "With --budget/--budget-map: precision of the layers kept out of INT8 and of the rest of"
        " the float graph (fp16: FP16 tensors and Q/DQ scales, opset 19, for a strongly typed"
        " TensorRT build)."
    ),
)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
def quantize_cmd(
    model,
    mode,
    calib_dir,
    calib_size,
    method,
    exclude,
    target,
    quantize_head,
    cache_dir,
    no_speed_check,
    sensitivity,
    budget,
    holdout_dir,
    sensitivity_mode,
    budget_map,
    map_data,
    fallback,
    output,
):
    """Write an FP16 or INT8 copy of MODEL (an FP32 edgedet ONNX) with its manifest."""
    require("onnx", "build", "edgedet quantize")
    # calibration, FP16 conversion, the speed check
    require("onnxruntime", "ort", "edgedet quantize")
    from edgedet.onnx.quantize.api import QuantizeOptions, quantize

    if mode is None:
        raise InputError("choose --fp16 or --int8")
    opts = QuantizeOptions(
        mode,
        calib_dir,
        calib_size,
        method,
        target,
        tuple(exclude),
        not quantize_head,
        cache_dir,
        speed_check=not no_speed_check,
        sensitivity=sensitivity,
        budget=budget,
        holdout_dir=holdout_dir,
        sensitivity_mode=sensitivity_mode,
        fallback=fallback,
        budget_map=budget_map,
        map_data=map_data,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = quantize(model, output, opts, _progress() if mode == "int8" else None)
    for w in caught:
        if issubclass(w.category, UserWarning):
            click.echo(f"edgedet: warning: {w.message}", err=True)
    p = result.precision
    kept = ", ".join(f"{n} {reason}" for reason, n in p["kept_fp32"].items())
    extra = (
        f"; {p['calibration_images']} calibration images, {p['method']}, ranges "
        f"{'from cache' if p['cache_hit'] else 'cached'} at {p['cache']}"
        if mode == "int8"
        else ""
    )
    if "cpu_speed_check" in p:
        c = p["cpu_speed_check"]
        extra += (
            f"; CPU INT8 {c['int8_ms']:.1f} ms vs FP32 {c['fp32_ms']:.1f} ms here"
            f" (x{c['speedup']:.2f})"
        )
    click.echo(
        f"wrote {result.path} ({mode}, target {p.get('target', 'tensorrt')}); kept FP32:"
        f" {kept}{extra}"
    )
    _echo_analysis(p)


def _echo_analysis(p: dict) -> None:
    """Held-out agreement, the budget's fallback layers, the report path (when they were
    measured)."""
    if "int8_agreement" in p:
        a = p["int8_agreement"]
        click.echo(
            f"  held-out ({p['holdout']['images']} images): plain INT8 matches {a['matched']:.1%}"
            f" of FP32's detections at IoU 0.9 ({a['matched_at_0.5']:.1%} at 0.5)"
        )
    if "budget" in p:
        b = p["budget"]
        prec = b["fallback_precision"].split()[0]
        drop = f", mAP drop {b['map_drop_pt']:.2f} pt" if "map_drop_pt" in b else ""
        click.echo(
            f"  budget: {b['agreement']['matched']:.1%} matched{drop} with"
            f" {len(b['fallback_layers'])} layer(s) in {prec}:"
            f" {', '.join(b['fallback_layers']) or 'none needed'}"
        )
        if b["unseen"]["images"]:
            click.echo(
                f"  unseen ({b['unseen']['images']} held-out images the search never saw): "
                f"{b['unseen']['matched']:.1%} matched"
            )
    if "sensitivity_report" in p:
        click.echo(f"  sensitivity report: {', '.join(p['sensitivity_report'])}")


def _progress():
    """A calibration progress line on stderr, started on the first image."""

    def progress(done, total):
        click.echo(f"\r  calibrating {done}/{total}", err=True, nl=done == total)

    return progress


@click.command("check-qdq")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--list-nodes", is_flag=True, help="List node names and op types (for --exclude patterns)."
)
def check_qdq_cmd(model, list_nodes):
    """Check MODEL's Q/DQ nodes against TensorRT's ONNX parser rules; exit 1 naming each
    violation."""
    require("onnx", "build", "edgedet check-qdq")
    from edgedet.onnx.quantize.check import check_qdq
    from edgedet.onnx.tools import load_onnx

    m = load_onnx(model)
    if list_nodes:
        for node in m.graph.node:
            click.echo(f"{node.op_type:24s} {node.name}")
        return
    qdq = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.node)
    violations = check_qdq(m)
    for v in violations:
        click.echo(f"violation: {v}")
    if violations:
        click.echo(
            f"edgedet: error: {model}: {len(violations)} Q/DQ node(s) break TensorRT's rules",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"{model}: {qdq} Q/DQ nodes, all within TensorRT's parser rules")
