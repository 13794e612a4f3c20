"""`edgedet eval`: COCO mAP of an artifact on a labelled set (COCO JSON or YOLO txt)."""

from __future__ import annotations

import sys

import click

from edgedet.cli.common import (
    POSITIVE,
    backend_options,
    check_json_path,
    full_decode_option,
    json_report_option,
    load_options,
    write_json_report,
)


@click.command("eval")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--data",
    required=True,
    type=click.Path(),
    help="COCO annotations.json, a folder holding one, or a YOLO folder.",
)
@click.option(
    "--images",
    "image_dir",
    type=click.Path(file_okay=False),
    help="Image folder when --data is a JSON file elsewhere.",
)
@click.option("--limit", type=POSITIVE, help="Evaluate only the first N images.")
@click.option("--batch", type=POSITIVE, default=1, show_default=True)
@backend_options
@full_decode_option
@json_report_option
def eval_cmd(
    model, data, image_dir, limit, batch, backend, providers, spinning, full_decode, json_path
):
    """mAP@0.5:0.95, mAP@0.5 and the other COCO statistics of MODEL on --data."""
    import edgedet
    from edgedet.eval.datasets import load_dataset
    from edgedet.eval.runner import evaluate

    check_json_path(json_path, [model, f"{model}.json", data])  # fail before the run, not after it
    dataset = load_dataset(data, image_dir)
    opts = load_options(model, backend, providers, spinning)
    with edgedet.load(model, full_decode=full_decode, **opts) as det:
        _say_if_random(det.manifest, model)
        total = min(limit or len(dataset.coco["images"]), len(dataset.coco["images"]))
        with click.progressbar(length=total, label="evaluating", file=sys.stderr) as bar:
            last = [0]

            def progress(done, _total):
                bar.update(done - last[0])
                last[0] = done

            stats = evaluate(det, dataset, limit, batch, progress)
    click.echo(
        f"{model} on {data} ({stats['images']} images, {stats['seconds']} s): mAP@0.5:0.95"
        f" {stats['mAP']:.4f}  mAP@0.5 {stats['mAP50']:.4f}  mAP@0.75 {stats['mAP75']:.4f}  AR@100"
        f" {stats['AR100']:.4f}"
    )
    if json_path:
        write_json_report(json_path, stats)


def _say_if_random(manifest, model) -> None:
    from edgedet.manifest import random_weights_note

    note = random_weights_note(manifest, model)
    if note:
        click.echo(f"edgedet: warning: {note}", err=True)
