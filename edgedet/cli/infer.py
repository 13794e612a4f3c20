"""`edgedet infer`: run a model on images or folders; write annotated images and COCO results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgedet.errors import EdgeDetError, InputError
from edgedet.streams.cli import stream_options


def collect_images(paths: tuple[str, ...]) -> list[Path]:
    """Expand folders (non-recursive) into image files; keep files as given."""
    from edgedet.preprocess import list_images

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(list_images(p))
        elif p.exists():
            files.append(p)
        else:
            raise InputError(f"{p} does not exist")
    return files


@click.command("infer")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="edgedet-infer", show_default=True)
@click.option("--min-score", type=float, default=0.25, show_default=True, help="Drop detections below this score.")
@click.option("--score-threshold", type=float, help="NMS score threshold (host NMS, or a model exported with "
              "--runtime-thresholds); the manifest's value otherwise.")
@click.option("--iou-threshold", type=float, help="NMS IoU threshold (same conditions as --score-threshold).")
@click.option("--backend", default="auto", show_default=True, help="auto, onnxruntime or tensorrt.")
@click.option("--providers", help="ONNX Runtime providers, e.g. cpu or cuda,cpu.")
@click.option("--no-draw", is_flag=True, help="Write only the JSON, no annotated images.")
@click.option("--skip-bad", is_flag=True, help="Warn about unreadable images and go on instead of stopping.")
@stream_options
def infer_cmd(model, images, out_dir, min_score, score_threshold, iou_threshold, backend, providers, no_draw, skip_bad,
              **stream):
    """Detect objects in IMAGES (files, folders; or videos, URLs, cameras, source lists) with MODEL.

    Videos, rtsp/rtmp/http URLs, cameras (0, /dev/video0) and .txt source lists run the pipelined
    stream runtime: OUT/detections.jsonl and an annotated OUT/<name>.mp4 per stream (docs/streams.md).
    """
    from edgedet.streams.cli import infer_streams, wants_streams

    if wants_streams(images):
        return infer_streams(model, images, out_dir, min_score, score_threshold, iou_threshold, backend, providers,
                             no_draw, **stream)
    import edgedet
    from edgedet.fileio import write_bytes_atomic, write_text_atomic
    from edgedet.preprocess import read_image

    out = Path(out_dir)
    opts = {"providers": providers} if providers else {}
    records, failed = [], 0
    with edgedet.load(model, backend=backend, **opts) as det:
        det.set_thresholds(score_threshold, iou_threshold)
        files = collect_images(images)
        with click.progressbar(list(enumerate(files)), label="detecting", file=sys.stderr) as bar:
            for image_id, path in bar:
                try:
                    rgb = read_image(path)
                except EdgeDetError as exc:
                    if not skip_bad:
                        raise
                    click.echo(f"\nedgedet: warning: skipped {exc}", err=True)
                    failed += 1
                    continue
                dets = det([rgb], min_score=min_score)[0]
                for r in dets.to_coco(image_id, det.manifest.category_ids):
                    records.append({**r, "file_name": str(path)})
                if not no_draw:
                    write_bytes_atomic(out / f"{path.stem}.jpg", _encode_jpeg(dets.draw(rgb)))
    write_text_atomic(out / "detections.json", json.dumps(records, indent=1) + "\n")
    click.echo(f"{len(records)} detections in {len(files) - failed} images -> {out}/detections.json"
               + ("" if no_draw else f" and annotated images in {out}/") + (f"; {failed} skipped" if failed else ""))
    if failed:
        raise SystemExit(1)


def _encode_jpeg(rgb) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return buf.tobytes()
