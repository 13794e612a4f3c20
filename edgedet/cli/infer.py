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
    records, failed, capped = [], 0, 0
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
                capped += len(dets) >= det.nms_params.max_output_boxes
                for r in dets.to_coco(image_id, det.manifest.category_ids):
                    records.append({**r, "file_name": str(path)})
                if not no_draw:
                    name, data = _encode(dets.draw(rgb), path)
                    write_bytes_atomic(out / name, data)
    write_text_atomic(out / "detections.json", json.dumps(records, indent=1) + "\n")
    click.echo(f"{len(records)} detections in {len(files) - failed} images -> {out}/detections.json"
               + ("" if no_draw else f" and annotated images in {out}/") + (f"; {failed} skipped" if failed else ""))
    if capped:
        cap = det.nms_params.max_output_boxes
        click.echo(f"edgedet: note: {capped} image(s) reached the model's limit of {cap} detections, so objects may be "
                   f"missing there; re-export (or re-run attach-nms) with a larger --max-det", err=True)
    if failed:
        raise SystemExit(1)


def _encode(rgb, source: Path) -> tuple[str, bytes]:
    """Annotated image in the source's own format (JPEG/PNG/WebP/BMP/TIFF), JPEG when OpenCV cannot write it."""
    import cv2

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    suffix = source.suffix.lower()
    if suffix not in (".jpg", ".jpeg"):
        try:
            ok, buf = cv2.imencode(suffix, bgr)
            if ok:
                return source.name, buf.tobytes()
        except cv2.error:
            pass
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return (source.name if suffix in (".jpg", ".jpeg") else f"{source.stem}.jpg"), buf.tobytes()
