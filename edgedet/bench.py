"""Latency benchmark of a Detector, stage by stage, saying what each number includes.

Stages, timed separately on every iteration with time.perf_counter:
  preprocess   letterbox + layout of already-decoded images (file decoding excluded)
  inference    backend.infer: host->device copy, model, device->host copy (ORT CPU: the model only)
  postprocess  host NMS when the model has none, box mapping to original pixels, Detections
  end_to_end   the three above back to back, timed as one span
TensorRT engines add GPU-side figures from CUDA events on the backend's stream (see GPU_MEANING):
  h2d, gpu_compute, d2h, gpu_total
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import numpy as np

STAGES = ("preprocess", "inference", "postprocess", "end_to_end")
STAGE_MEANING = {
    "preprocess": "letterbox + NCHW layout of decoded images (JPEG/PNG decoding excluded)",
    "inference": "backend call: model execution incl. any host<->device copies the backend makes",
    "postprocess": (
        "host NMS (raw models only) + mapping boxes to original pixels + Detections objects"
    ),
    "end_to_end": "preprocess + inference + postprocess, one span per batch",
}
# Backends that time the GPU (TensorRT: CUDA events) expose `last_timings` in ms after each call.
GPU_STAGES = ("h2d", "gpu_compute", "d2h", "gpu_total")
GPU_MEANING = {
    "h2d": "host->device copy of the input batch from pinned memory (CUDA events)",
    "gpu_compute": (
        "engine execution on the GPU only: CUDA events around execute_async_v3 / the CUDA graph"
        " launch"
    ),
    "d2h": "device->host copy of all outputs (CUDA events)",
    "gpu_total": (
        "h2d + gpu_compute + d2h on the GPU timeline (inference minus host-side Python overhead)"
    ),
}


@dataclass
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1,)
    iters: int = 50
    warmup: int = 10


def summarize(samples_s: list[float]) -> dict:
    """Statistics in milliseconds."""
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def synthetic_images(
    count: int, height: int = 480, width: int = 640, seed: int = 0
) -> list[np.ndarray]:
    """Random RGB frames of a typical camera size, used when no --images are given."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def bench_detector(detector, images: list[np.ndarray], config: BenchConfig, progress=None) -> dict:
    """Time ``detector`` on batches drawn cyclically from ``images`` (decoded RGB arrays)."""
    results = {"stages": STAGE_MEANING, "batches": {}}
    for bs in config.batch_sizes:
        batch = [images[i % len(images)] for i in range(bs)]
        times = {s: [] for s in STAGES}
        gpu = {s: [] for s in GPU_STAGES}
        for it in range(config.warmup + config.iters):
            t0 = time.perf_counter()
            x, infos, names = detector.preprocess(batch)
            t1 = time.perf_counter()
            out = detector.infer(x)
            t2 = time.perf_counter()
            detector.postprocess(out, infos, names)
            t3 = time.perf_counter()
            if it >= config.warmup:
                for s, v in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    times[s].append(v)
                _collect_gpu(detector.backend, gpu)
            if progress:
                progress(bs, it + 1, config.warmup + config.iters)
        stats = {s: summarize(v) for s, v in times.items()}
        stats["throughput_images_per_s"] = bs / (stats["end_to_end"]["mean"] / 1e3)
        stats["inference_throughput_images_per_s"] = bs / (stats["inference"]["mean"] / 1e3)
        if any(gpu.values()):
            stats["gpu"] = {s: summarize(v) for s, v in gpu.items() if v}
            results["stages"] = {**STAGE_MEANING, **GPU_MEANING}
        results["batches"][str(bs)] = stats
    return results


def _collect_gpu(backend, gpu: dict) -> None:
    """Append the backend's GPU-side timings of its last call (ms -> s), when it reports any."""
    last = backend.last_timings if backend.capabilities.stage_timings else {}
    for s in GPU_STAGES:
        if f"{s}_ms" in last:
            gpu[s].append(last[f"{s}_ms"] / 1e3)


def machine_info() -> dict:
    """CPU model and core count, for labelling every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def format_table(results: dict) -> str:
    """Plain-text table: one row per (batch, stage)."""
    lines = [
        f"{'batch':>5} {'stage':<12} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8} {'std':>7}"
        f" {'min':>8} {'max':>8}  (ms)"
    ]
    for bs, stats in results["batches"].items():
        for s in STAGES:
            v = stats[s]
            lines.append(
                f"{bs:>5} {s:<12} {v['p50']:8.2f} {v['p90']:8.2f} {v['p99']:8.2f} {v['mean']:8.2f} "
                f"{v['std']:7.2f} {v['min']:8.2f} {v['max']:8.2f}"
            )
        for s, v in stats.get("gpu", {}).items():
            lines.append(
                f"{bs:>5} {s:<12} {v['p50']:8.2f} {v['p90']:8.2f} {v['p99']:8.2f} {v['mean']:8.2f} "
                f"{v['std']:7.2f} {v['min']:8.2f} {v['max']:8.2f}"
            )
        lines.append(
            f"{bs:>5} throughput   {stats['throughput_images_per_s']:.1f} images/s end-to-end, "
            f"{stats['inference_throughput_images_per_s']:.1f} images/s inference only"
        )
    return "\n".join(lines)
