"""CLI glue for streams: the options `edgedet infer` adds, and its video/URL/camera path.

Kept here so edgedet/cli/infer.py only dispatches: image files and folders keep the original
per-image path; any video, URL, camera or source list runs the pipelined stream runtime.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def stream_options(fn):
    """Options that apply to video, URL and camera sources."""
    for option in reversed(
        [
            click.option(
                "--track",
                is_flag=True,
                help="Videos/streams: add ByteTrack ids to detections (JSON and video).",
            ),
            click.option(
                "--policy",
                type=click.Choice(["latest", "all"]),
                help=(
                    "Videos/streams: 'latest' drops stale frames (default for live sources), "
                    "'all' keeps every frame (default for files)."
                ),
            ),
            click.option(
                "--batch",
                type=int,
                help=(
                    "Videos/streams: frames per model call across streams "
                    "(default: one per stream, within the model's batch)."
                ),
            ),
            click.option(
                "--max-frames",
                type=int,
                help="Videos/streams: stop after this many frames per stream.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def wants_streams(sources) -> bool:
    from edgedet.streams.sources import is_stream_source

    return any(is_stream_source(s) for s in sources)


def infer_streams(
    model,
    sources,
    out_dir,
    min_score,
    score_threshold,
    iou_threshold,
    load_opts,
    no_draw,
    track=False,
    policy=None,
    batch=None,
    max_frames=None,
) -> None:
    """Run the pipeline, write out/<source>.mp4 per video stream and out/detections.jsonl.
    ``load_opts``: edgedet.load's keyword arguments (edgedet.cli.common.load_options)."""
    import edgedet
    from edgedet.streams.pipeline import Pipeline
    from edgedet.streams.sources import parse_sources
    from edgedet.streams.writers import JsonlSink, VideoSink

    out = Path(out_dir)
    specs = parse_sources(list(sources))
    with edgedet.load(model, **load_opts) as det:
        det.set_thresholds(score_threshold, iou_threshold)
        videos = (
            {}
            if no_draw
            else {
                i: out / video_name(i, s, specs) for i, s in enumerate(specs) if s.kind != "images"
            }
        )
        pipe = Pipeline(
            det,
            specs,
            policy=policy,
            batch=batch,
            track=track,
            min_score=min_score,
            max_frames=max_frames,
        )
        pipe.open()  # a bad source fails here, before any output file exists
        interrupted = False
        try:
            pipe.sinks = [JsonlSink(out / "detections.jsonl")]
            pipe.sinks += [VideoSink(videos, min_score=min_score)] if videos else []
            for _ in pipe:
                pass
        except KeyboardInterrupt:
            interrupted = True
        finally:
            pipe.close()
    s = pipe.stats
    written = f"{out}/detections.jsonl" + "".join(f", {p}" for p in videos.values())
    click.echo(
        ("interrupted: " if interrupted else "")
        + f"{s.frames} frames from {len(specs)} stream(s) -> {written}; "
        f"pipeline {s.fps:.1f} FPS end to end, {pipe.dropped} frames dropped"
    )
    if interrupted:
        sys.exit(130)


def video_name(i: int, spec, specs) -> str:
    stem = Path(spec.target).stem if spec.kind == "video" else f"stream{i}"
    clash = sum(1 for s in specs if s.kind == "video" and Path(s.target).stem == stem) > 1
    return f"{stem}-{i}.mp4" if clash else f"{stem}.mp4"


def bench_stream(model, source, load_opts, batch, max_frames, duration, json_path) -> None:
    """`edgedet bench MODEL SOURCE`: run the pipeline on SOURCE, print labelled figures.
    ``load_opts``: edgedet.load's keyword arguments (edgedet.cli.common.load_options)."""
    import json

    import edgedet
    from edgedet.fileio import write_text_atomic
    from edgedet.streams.bench import bench_source, format_report

    with edgedet.load(model, **load_opts) as det:
        report = bench_source(det, source, max_frames=max_frames, duration=duration, batch=batch)
        report.update(model=str(model), backend=det.backend.describe())
    click.echo(format_report(report))
    if json_path:
        write_text_atomic(json_path, json.dumps(report, indent=2) + "\n")
        click.echo(f"wrote {json_path}")
