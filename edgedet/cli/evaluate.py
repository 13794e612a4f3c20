"""`edgedet eval`: COCO mAP of an artifact on a labelled set (COCO JSON or YOLO txt)."""

from __future__ import annotations

import json
import sys

import click

from edgedet.cli.common import POSITIVE


@click.command("eval")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(), help="COCO annotations.json, a folder holding one, or a YOLO folder.")
@click.option("--images", "image_dir", type=click.Path(file_okay=False), help="Image folder when --data is a JSON file elsewhere.")
@click.option("--limit", type=POSITIVE, help="Evaluate only the first N images.")
@click.option("--batch", type=POSITIVE, default=1, show_default=True)
@click.option("--backend", default="auto", show_default=True)
@click.option("--providers", help="ONNX Runtime providers, e.g. cpu.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the statistics here.")
def eval_cmd(model, data, image_dir, limit, batch, backend, providers, json_path):
    """mAP@0.5:0.95, mAP@0.5 and the other COCO statistics of MODEL on --data."""
    import edgedet
    from edgedet.eval.datasets import load_dataset
    from edgedet.eval.runner import evaluate
    from edgedet.fileio import check_not_input, check_writable, write_text_atomic

    if json_path:  # fail before the run, not after it
        check_not_input([check_writable(json_path)], [model, f"{model}.json", data])
    dataset = load_dataset(data, image_dir)
    opts = {"providers": providers} if providers else {}
    with edgedet.load(model, backend=backend, **opts) as det:
        _say_if_random(det.manifest, model)
        total = min(limit or len(dataset.coco["images"]), len(dataset.coco["images"]))
        with click.progressbar(length=total, label="evaluating", file=sys.stderr) as bar:
            last = [0]

            def progress(done, _total):
                bar.update(done - last[0])
                last[0] = done

            stats = evaluate(det, dataset, limit, batch, progress)
    click.echo(f"{model} on {data} ({stats['images']} images, {stats['seconds']} s): "
               f"mAP@0.5:0.95 {stats['mAP']:.4f}  mAP@0.5 {stats['mAP50']:.4f}  mAP@0.75 {stats['mAP75']:.4f}  "
               f"AR@100 {stats['AR100']:.4f}")
    if json_path:
        write_text_atomic(json_path, json.dumps(stats, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


def _say_if_random(manifest, model) -> None:
    from edgedet.manifest import random_weights_note

    note = random_weights_note(manifest, model)
    if note:
        click.echo(f"edgedet: warning: {note}", err=True)
