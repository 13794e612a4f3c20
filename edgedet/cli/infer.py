"""`edgedet infer`: run a model on images or folders; write annotated images and COCO results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgedet.cli.common import FRACTION, backend_options, load_options
from edgedet.errors import EdgeDetError, InputError
from edgedet.streams.cli import stream_options

# annotated copies keep their source's format when OpenCV can encode it
ENCODABLE = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


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


def output_names(files: list[Path], out: Path) -> list[Path]:
    """One distinct annotated-image path per input: same name and extension (a.jpg + a.png stay two
    files), a -N suffix when two folders hold the same name; never one of the inputs themselves."""
    from edgedet.fileio import same_file

    used: set[str] = set()
    names = []
    for path in files:
        ext = path.suffix if path.suffix.lower() in ENCODABLE else path.suffix + ".png"
        stem, n = path.stem, 1
        name = f"{stem}{ext}"
        while name.lower() in used:
            name, n = f"{stem}-{n}{ext}", n + 1
        used.add(name.lower())
        target = out / name
        if target.exists() and any(same_file(target, f) for f in files):
            raise InputError(
                f"output folder {out} holds the input image {target}: annotated copies would"
                " replace the originals; choose another -o folder"
            )
        names.append(target)
    return names


@click.command("infer")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="edgedet-infer",
    show_default=True,
)
@click.option(
    "--min-score",
    type=FRACTION,
    default=0.25,
    show_default=True,
    help="Drop detections below this score.",
)
@click.option(
    "--score-threshold",
    type=FRACTION,
    help=(
        "NMS score threshold (host NMS, or a model exported with "
        "--runtime-thresholds); the manifest's value otherwise."
    ),
)
@click.option(
    "--iou-threshold",
    type=FRACTION,
    help="NMS IoU threshold (same conditions as --score-threshold).",
)
@backend_options
@click.option("--no-draw", is_flag=True, help="Write only the JSON, no annotated images.")
@click.option(
    "--skip-bad", is_flag=True, help="Warn about unreadable images and go on instead of stopping."
)
@stream_options
def infer_cmd(
    model,
    images,
    out_dir,
    min_score,
    score_threshold,
    iou_threshold,
    backend,
    providers,
    spinning,
    no_draw,
    skip_bad,
    **stream,
):
    """Detect objects in IMAGES (files, folders; or videos, URLs, cameras, source lists) with MODEL.

    Videos, rtsp/rtmp/http URLs, cameras (0, /dev/video0) and .txt source lists run the pipelined
    stream runtime: OUT/detections.jsonl and an annotated OUT/<name>.mp4 per stream
    (docs/streams.md).
    """
    from edgedet.streams.cli import infer_streams, wants_streams

    opts = load_options(model, backend, providers, spinning)
    if wants_streams(images):
        return infer_streams(
            model,
            images,
            out_dir,
            min_score,
            score_threshold,
            iou_threshold,
            opts,
            no_draw,
            **stream,
        )
    import edgedet
    from edgedet.fileio import check_not_input, check_writable

    out = Path(out_dir)
    with edgedet.load(model, **opts) as det:
        files = collect_images(images)
        targets = [] if no_draw else output_names(files, out)
        json_out = check_writable(out / "detections.json")  # fail before the run, not after it
        check_not_input([json_out, *targets], [model, f"{model}.json", *files])
        for target in targets:
            check_writable(target)
        if det.manifest.task != "detect":
            raise InputError(
                f"{model} is a {det.manifest.task} model, not a detector; `edgedet infer` draws "
                "boxes: run it from Python (edgedet.load(...)(image)) or use `edgedet compare`"
            )
        say_if_random(det.manifest, model)
        det.set_thresholds(score_threshold, iou_threshold)
        records, failed, done, capped = _run(det, files, targets, min_score, skip_bad, json_out)
    click.echo(
        f"{len(records)} detections in {done} images -> {json_out}"
        + ("" if no_draw else f" and annotated images in {out}/")
        + (f"; {failed} skipped" if failed else "")
    )
    if capped:
        cap = det.nms_params.max_output_boxes
        click.echo(
            f"edgedet: note: {capped} image(s) reached the model's limit of {cap} detections, so"
            " objects may be missing there; re-export (or re-run attach-nms) with a larger"
            " --max-det",
            err=True,
        )
    if failed:
        raise SystemExit(1)


def _run(det, files, targets, min_score, skip_bad, json_out):
    """Detect, draw and record each image; on a stop, detections.json still covers the images
    done."""
    from edgedet.fileio import write_bytes_atomic

    records, failed, done, capped = [], 0, 0, 0
    try:
        with click.progressbar(list(enumerate(files)), label="detecting", file=sys.stderr) as bar:
            for image_id, path in bar:
                try:
                    rgb = edgedet_read(path)
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
                if targets:
                    write_bytes_atomic(
                        targets[image_id], _encode(dets.draw(rgb), targets[image_id].suffix)
                    )
                done += 1
    except (EdgeDetError, KeyboardInterrupt) as exc:
        if done:
            _write_json(json_out, records)
            if isinstance(exc, EdgeDetError):
                raise type(exc)(
                    f"{exc} (stopped; detections of the {done} images before it are in {json_out})"
                ) from None
        raise
    _write_json(json_out, records)
    return records, failed, done, capped


def edgedet_read(path):
    from edgedet.preprocess import read_image

    return read_image(path)


def _write_json(path: Path, records: list) -> None:
    from edgedet.fileio import write_text_atomic

    write_text_atomic(path, json.dumps(records, indent=1) + "\n")


def say_if_random(manifest, model) -> None:
    """Random-weight models (export without --weights) detect nothing useful: say so once."""
    from edgedet.manifest import random_weights_note

    note = random_weights_note(manifest, model)
    if note:
        click.echo(f"edgedet: warning: {note}", err=True)


def _encode(rgb, suffix: str) -> bytes:
    import cv2

    ext = suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(f"cannot encode an annotated {ext} image; use --no-draw")
    return buf.tobytes()
