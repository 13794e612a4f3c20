"""`edgedet bench MODEL SOURCE`: end-to-end figures of the stream pipeline, labelled.

Pipeline FPS (results delivered per second of wall time, decode to result) is the number that
matters on a device; model-only FPS (frames per second of time inside the backend call) is
reported beside it and named so, because quoting the network alone overstates what a user sees.
"""

from __future__ import annotations

import time

from edgedet.bench import machine_info, summarize
from edgedet.streams.pipeline import STAGE_MEANING, Pipeline


def bench_source(
    detector, source, max_frames: int | None = None, duration: float | None = None, **options
) -> dict:
    """Run the pipeline on ``source`` until it ends, ``max_frames`` per stream or ``duration`` s."""
    pipe = Pipeline(detector, source, max_frames=max_frames, **options)
    t_end = time.perf_counter() + duration if duration else None
    for _ in pipe:
        if t_end and time.perf_counter() > t_end:
            break
    return report(pipe)


def report(pipe: Pipeline) -> dict:
    s = pipe.stats
    stages = {k: summarize(v) for k, v in s.stages.items() if v}
    model_s = sum(s.stages["model"])
    return {
        "machine": machine_info(),
        "streams": [spec.target for spec in pipe.specs],
        "batch": pipe.batch,
        "frames": s.frames,
        "wall_s": round(s.finished - s.started, 3),
        "pipeline_fps": round(s.fps, 2),
        "model_only_fps": round(sum(s.batch_sizes) / model_s, 2) if model_s else None,
        "latency_ms": (
            {k: round(stages["latency"][k], 2) for k in ("p50", "p99", "max")}
            if "latency" in stages
            else {}
        ),
        "dropped": {v["source"]: v["dropped"] for v in s.per_stream.values()},
        "reconnects": {v["source"]: v["reconnects"] for v in s.per_stream.values()},
        "stages_ms": stages,
        "meaning": {
            "pipeline_fps": (
                "frames delivered per second of wall time, decode through result (all streams)"
            ),
            "model_only_fps": (
                "frames per second of time spent inside the backend call only: NOT the "
                "pipeline's rate"
            ),
            **STAGE_MEANING,
        },
    }


def format_report(r: dict) -> str:
    lines = [
        (
            f"pipeline FPS (end to end, {len(r['streams'])} stream(s), {r['frames']} frames):"
            f" {r['pipeline_fps']:.1f}"
        ),
        f"model-only FPS (backend call alone, not the pipeline): {r['model_only_fps'] or 0:.1f}",
        (
            f"capture-to-result latency: p50 {r['latency_ms'].get('p50', 0):.1f} ms, "
            f"p99 {r['latency_ms'].get('p99', 0):.1f} ms"
        ),
        (
            f"dropped frames: {sum(r['dropped'].values())}, reconnects:"
            f" {sum(r['reconnects'].values())}"
        ),
        f"{'stage':<12} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'n':>6}",
    ]
    for name, st in r["stages_ms"].items():
        lines.append(f"{name:<12} {st['p50']:8.2f} {st['p99']:8.2f} {st['mean']:8.2f} {st['n']:6d}")
    return "\n".join(lines)
