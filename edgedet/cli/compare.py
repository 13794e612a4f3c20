"""`edgedet compare A B`: detection-aware parity between two artifacts or the PyTorch model."""

from __future__ import annotations

import click

from edgedet.cli.common import (
    FRACTION,
    POSITIVE,
    check_json_path,
    json_report_option,
    load_options,
    providers_option,
    write_json_report,
)
from edgedet.errors import InputError

TORCH_PREFIX = "torch:"


def open_operand(spec: str, providers: tuple[str, ...] | None):
    """'model.onnx' / 'model.engine' / 'torch:NAME[@weights.pt]' -> (Detector, artifact path or
    None)."""
    import edgedet

    if spec.startswith(TORCH_PREFIX):
        from edgedet.errors import require

        require("torch", "export", "comparing against the PyTorch model")
        torch_tier = require(
            "exporters.torch_backend", "export", "comparing against the PyTorch model"
        )
        return torch_tier.open_torch_operand(spec[len(TORCH_PREFIX) :]), None
    return edgedet.load(spec, **load_options(spec, "auto", providers)), spec


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option(
    "--images",
    "image_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of images to compare on.",
)
@click.option(
    "--limit", type=POSITIVE, default=50, show_default=True, help="At most this many images."
)
@click.option(
    "--iou",
    "iou_threshold",
    type=FRACTION,
    default=0.5,
    show_default=True,
    help="IoU for matching detections.",
)
@click.option(
    "--min-score",
    type=FRACTION,
    default=0.25,
    show_default=True,
    help="Compare detections above this score.",
)
@click.option(
    "--min-match",
    type=FRACTION,
    help="Fail (exit 1) if matched fraction (either side) is below this.",
)
@click.option(
    "--max-score-delta", type=FRACTION, help="Fail (exit 1) if the mean score delta exceeds this."
)
@providers_option
@json_report_option
def compare_cmd(
    a,
    b,
    image_dir,
    limit,
    iou_threshold,
    min_score,
    min_match,
    max_score_delta,
    providers,
    json_path,
):
    """Compare detector B against reference A (files, or torch:NAME for the PyTorch model)."""
    from edgedet.eval.compare import compare_classifiers, compare_detectors
    from edgedet.manifest import random_weights_note
    from edgedet.preprocess import list_images, read_image

    check_json_path(json_path, [a, b, f"{a}.json", f"{b}.json"])  # before the run, not after it
    images = [read_image(p) for p in list_images(image_dir, limit)]
    det_a, path_a = open_operand(a, providers)
    det_b, path_b = open_operand(b, providers)
    with det_a, det_b:
        for det, name in ((det_a, a), (det_b, b)):
            note = random_weights_note(det.manifest, name)
            if note:
                click.echo(f"edgedet: warning: {note}", err=True)
        if det_a.manifest.task != det_b.manifest.task:
            raise InputError(
                f"{a} is a {det_a.manifest.task} model and {b} a {det_b.manifest.task} model"
            )
        if det_a.manifest.task == "classify":
            report = compare_classifiers(det_a, det_b, images)
        else:
            report = compare_detectors(
                det_a,
                det_b,
                images,
                iou_threshold,
                min_score,
                _raw_pair(det_a, path_a, det_b, path_b),
            )
    report.update({"a": a, "b": b, "images_dir": image_dir})
    click.echo(
        format_classify(report) if report.get("task") == "classify" else format_report(report)
    )
    if json_path:
        write_json_report(json_path, report)
    failures = gate(report, min_match, max_score_delta)
    if failures:
        click.echo(f"edgedet: error: parity gate failed: {'; '.join(failures)}", err=True)
        raise SystemExit(1)


def _raw_pair(det_a, path_a, det_b, path_b):
    """Raw-tensor taps for both sides when available (needs the host toolchain's onnx)."""
    try:
        from edgedet.onnx.raw_tap import raw_tap
    except ImportError:
        return None
    ta, tb = raw_tap(det_a, path_a), raw_tap(det_b, path_b)
    if ta is None or tb is None:
        return None

    def pair(img):
        ra, rb = ta(img), tb(img)
        return {k: (ra[k], rb[k]) for k in ra if k in rb and ra[k].shape == rb[k].shape}

    return pair


def gate(report: dict, min_match: float | None, max_score_delta: float | None) -> list[str]:
    """Parity gate: for detectors the matched fraction, for classifiers top-1 agreement."""
    failures = []
    if report.get("task") == "classify":
        if min_match is not None and report["top1_agreement"] < min_match:
            failures.append(f"top-1 agreement {report['top1_agreement']:.3f} < {min_match}")
        return failures
    if (
        (min_match is not None or max_score_delta is not None)
        and not report["detections_a"]
        and not report["detections_b"]
    ):
        failures.append(
            f"neither model detected anything at score >= {report['min_score']} on"
            f" {report['images']} images: nothing was compared (lower --min-score or use images"
            " with objects)"
        )
        return failures
    if min_match is not None:
        worst = min(report["matched_a"], report["matched_b"])
        if worst < min_match:
            failures.append(f"matched fraction {worst:.3f} < {min_match}")
    if max_score_delta is not None and report["score_delta"]["mean"] > max_score_delta:
        failures.append(f"mean score delta {report['score_delta']['mean']:.4f} > {max_score_delta}")
    return failures


def format_classify(r: dict) -> str:
    return (
        f"A = {r['a']}   B = {r['b']}   ({r['images']} images)\n  top-1 agreement "
        f" {r['top1_agreement']:.3f}\n  top-5 agreement  {r['top5_agreement']:.3f} (A's top-1"
        f" within B's top-5), overlap {r['top5_overlap']:.3f}\n  prob delta       mean"
        f" {r['prob_delta']['mean']:.4f}  max {r['prob_delta']['max']:.4f}"
    )


def format_report(r: dict) -> str:
    lines = [
        (
            f"A = {r['a']}   B = {r['b']}   ({r['images']} images, score >= {r['min_score']}, IoU"
            f" >= {r['iou_threshold']})"
        ),
        (
            f"  detections        A {r['detections_a']}   B {r['detections_b']}   "
            f"count delta/image mean {r['count_delta']['mean']:.2f} max {r['count_delta']['max']}"
        ),
        (
            f"  matched           {r['matched_a']:.3f} of A, {r['matched_b']:.3f} of B"
            if r["detections_a"] or r["detections_b"]
            else "  matched           nothing to compare: 0 detections on both sides"
        ),
        f"  class agreement   {r['class_agreement']:.3f}",
        (
            f"  score delta       mean {r['score_delta']['mean']:.4f}  p95"
            f" {r['score_delta']['p95']:.4f}  max {r['score_delta']['max']:.4f}"
        ),
        f"  matched IoU       mean {r['iou']['mean']:.4f}  min {r['iou']['min']:.4f}",
    ]
    for name, s in r.get("raw", {}).items():
        lines.append(
            f"  raw '{name}'  max abs {s['max_abs']:.4g}  mean abs {s['mean_abs']:.4g}  cosine"
            f" {s['cosine']:.6f}"
        )
    return "\n".join(lines)
