"""Streams: pipelined vs sequential, 4 batched streams vs 4 loops, live latency, Ultralytics.

All with nano exported to ONNX (dynamic batch, NMS in the graph) on ONNX Runtime CPU, in one run.
Every comparison runs its variants in rounds (A, B, C, A, B, C, ...) so background load hits all
alike; each run records its wall time, the process's CPU time (all threads) and the 1-minute load
average when it started; FPS are of the median wall time. On a machine shared with other work,
more runnable threads get more CPU share, so wall figures favour threaded variants under load;
frames per CPU-second is beside them. Measured in one run:
  pipelined_vs_sequential  a generated 1920x1080 H.264 (yuv420p) moving-shapes video, 60 frames.
      sequential: one thread, per frame PyAV decode -> det([rgb]) (letterbox, model, NMS, boxes
      back). pipelined: det.stream(video): decode+letterbox thread | model call(s) | post-process
      thread. Each with ONNX Runtime at one intra-op thread (pipelined: then cores // 1 model calls
      overlap, model_workers; '_one_call' pins 1) and at ONNX Runtime's default (all cores);
      the best setting of each side is compared. Every variant must give identical detections
      for every frame (checked).
  pipelined_vs_sequential_emulated_device  sequential vs pipelined with the backend call replaced by
      a sleep of --device-ms (CPU free, as during a GPU inference) returning ONNX Runtime's outputs
      computed beforehand for the same input, one call at a time (one TensorRT context): how much
      host work the pipeline hides when the model does not run on the CPU. An emulation.
  batched_4_streams  the same video as 4 streams, 30 frames each, ONNX Runtime at --threads.
      separate: 4 sequential loops in 4 threads sharing the session (what a user writes without a
      batching runtime). batched: one Pipeline gathering the 4 streams into batch-4 calls (default
      model_workers; '_one_call': 1); pipeline_batch1: the same at batch 1. Also the model's CPU per
      image at batch 1 and batch 4 (one intra-op thread, so the calling thread's CPU is all of it).
  live_latency  tests/helpers/mjpeg_sender.py (HTTP-MJPEG, 400x240 at 30 fps, a separate
      process) read through the pipeline by a consumer slower than the source (sleeps
      --consumer-ms per result, default 50 ms); capture-to-result latency and sender-to-result age
      (the send time is stamped in the pixels), first vs last third, drops counted.
  ultralytics  YOLO(onnx).predict(video, stream=True) (cv2 decode, letterbox, ORT with its default
      session, torchvision NMS) on Ultralytics' own ONNX export of yolov8n.yaml at 640 (random
      weights, benchmarks/e2e.py's class-bias prior), against edgedet on the same ONNX with
      attach-nms (same conf/iou/max_det), same video, --yolo-frames frames; detections per frame
      and the share of boxes the other side also found (same class, IoU >= 0.9).
Usage: python -m benchmarks.streams [--json benchmarks/results/streams.json] [--frames 60]
       [--only ...]
       python -m benchmarks.streams --live-only --live-seconds 300 --consumer-ms 150
       --json benchmarks/results/streams_live.json
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_results

HELPERS = Path(__file__).resolve().parents[1] / "tests" / "helpers"


def export_nano(out: Path) -> Path:
    from exporters.pipeline import ExportOptions, export

    path = out / "nano_dyn.onnx"
    export(ExportOptions(model="nano", dynamic_batch=True), path)
    return path


def make_video(out: Path, frames: int, width: int = 1920, height: int = 1080) -> Path:
    from exporters.nano.sequence import render_sequence, write_video

    rendered, _ = render_sequence(3, frames, width, height, num_objects=4)
    return write_video(rendered, out / f"shapes_{height}p.mp4", crf=18, pix_fmt="yuv420p")


def sequential(det, video: str, max_frames: int | None = None, cpu: dict | None = None) -> list:
    """The plain loop: decode a frame, run the detector on it, next. ``cpu`` collects this thread's
    CPU seconds spent decoding and in the detector."""
    from edgedet.streams.sources import open_reader, parse_sources

    reader = open_reader(parse_sources(video)[0])
    out, cpu = [], cpu if cpu is not None else {}
    frames = reader.frames()
    try:
        while True:
            c0 = time.thread_time()
            rgb = next(frames, None)
            c1 = time.thread_time()
            if rgb is None:
                break
            out.append(det([rgb[0]])[0])
            cpu["decode"] = cpu.get("decode", 0.0) + c1 - c0
            cpu["detector"] = cpu.get("detector", 0.0) + time.thread_time() - c1
            if max_frames and len(out) >= max_frames:
                break
    finally:
        reader.close()
    return out


def same(a, b) -> bool:
    return all(
        np.array_equal(x.boxes, y.boxes) and np.array_equal(x.scores, y.scores)
        for x, y in zip(a, b)
    )


def timed(fn):
    """(wall seconds, process CPU seconds of all threads, 1-minute load average before, result)."""
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    return time.perf_counter() - t0, time.process_time() - c0, round(load, 2), res


def interleaved(variants: dict, repeats: int, frames: int) -> tuple[dict, dict]:
    """Run every variant once per round, rounds repeated, so background load hits all alike.
    Returns ({name: figures}, {name: last result})."""
    runs, last = {name: ([], [], []) for name in variants}, {}
    for _ in range(repeats):
        for name, fn in variants.items():
            wall, cpu, load, last[name] = timed(fn)
            for xs, x in zip(runs[name], (round(wall, 3), round(cpu, 3), load)):
                xs.append(x)
    out = {
        name: {
            "wall_s": w,
            "cpu_s": c,
            "load_avg_1min": ld,
            "fps": round(frames / float(np.median(w)), 2),
            "frames_per_cpu_s": round(frames / float(np.median(c)), 2),
        }
        for name, (w, c, ld) in runs.items()
    }
    return out, last


def pipelined_vs_sequential(model: Path, video: Path, repeats: int) -> dict:
    """Sequential and pipelined, each with ONNX Runtime at one intra-op thread and at its default
    (all cores): 'best' is the fastest setting of each, so neither side loses to a bad setting."""
    import edgedet

    with (
        edgedet.load(model, providers=["cpu"], threads=1) as t1,
        edgedet.load(model, providers=["cpu"]) as tall,
    ):
        variants = {
            "sequential_ort1": lambda: sequential(t1, str(video)),
            "sequential_ort_default": lambda: sequential(tall, str(video)),
            "pipelined_ort1_one_call": lambda: [
                r.detections for r in t1.stream(str(video), model_workers=1)
            ],
            "pipelined_ort1": lambda: [r.detections for r in t1.stream(str(video))],
            "pipelined_ort_default": lambda: [r.detections for r in tall.stream(str(video))],
        }
        workers = t1.stream(str(video)).model_workers
        cpu = {}
        sequential(t1, str(video), cpu=cpu)  # warm-up, and the per-part CPU of the plain loop
        n = len(sequential(t1, str(video)))
        figures, last = interleaved(variants, repeats, n)
    ref = last["sequential_ort1"]
    identical = all(len(r) == n and same(ref, r) for r in last.values())
    seq = max((k for k in figures if k.startswith("seq")), key=lambda k: figures[k]["fps"])
    pipe = max((k for k in figures if k.startswith("pipe")), key=lambda k: figures[k]["fps"])

    def ratio(a, b):
        return round(figures[a]["fps"] / figures[b]["fps"], 3)

    return {
        "frames": n,
        "variants": figures,
        "identical_detections_all_variants": bool(identical),
        "pipelined_ort1_model_workers": workers,
        "best_sequential": seq,
        "best_pipelined": pipe,
        "speedup_best_pipelined_vs_best_sequential": ratio(pipe, seq),
        "speedup_same_session_ort1": ratio("pipelined_ort1", "sequential_ort1"),
        "speedup_one_model_call_at_a_time_ort1": ratio(
            "pipelined_ort1_one_call", "sequential_ort1"
        ),
        # the calling thread's CPU time per frame (PyAV's own decoder threads not included)
        "sequential_thread_cpu_ms_per_frame": {k: round(v / n * 1e3, 2) for k, v in cpu.items()},
    }


class EmulatedDevice:
    """Stands in for a GPU backend: each call sleeps ``ms`` (the CPU is free meanwhile, as during
    a TensorRT call) and returns the ONNX Runtime outputs computed beforehand for that exact input
    (keyed by its bytes), so detections stay real. Measures how much host work the pipeline hides.
    """

    def __init__(self, backend, ms: float) -> None:
        self.real, self.seconds, self.cache = backend, ms / 1e3, {}
        self.inputs, self.outputs, self.name = backend.inputs, backend.outputs, "emulated-device"
        # batch limits as the real backend's; one call at a time, as one TensorRT context
        self.capabilities = dataclasses.replace(backend.capabilities, concurrent_calls=False)

    def infer(self, feed):
        import hashlib

        key = hashlib.blake2b(next(iter(feed.values())).tobytes(), digest_size=16).digest()
        if key not in self.cache:
            self.cache[key] = self.real.infer(feed)
            return self.cache[key]
        time.sleep(self.seconds)
        return self.cache[key]


def emulated_device(det, video: Path, ms: float, repeats: int) -> dict:
    real = det.backend
    # no concurrent calls: one at a time, as one TensorRT context
    det.backend = EmulatedDevice(real, ms)
    try:
        n = len(sequential(det, str(video)))  # fills the cache with the real outputs
        figures, last = interleaved(
            {
                "sequential": lambda: sequential(det, str(video)),
                "pipelined": lambda: [r.detections for r in det.stream(str(video))],
            },
            repeats,
            n,
        )
    finally:
        det.backend = real
    return {
        "device_ms_per_call": ms,
        "frames": n,
        "variants": figures,
        "identical_detections": bool(same(last["sequential"], last["pipelined"])),
        "speedup": round(figures["pipelined"]["fps"] / figures["sequential"]["fps"], 3),
    }


def model_cpu_per_image(det, video: Path, batch: int, calls: int = 8) -> float:
    """Thread CPU ms per image of one backend call at ``batch`` (ONNX Runtime at one intra-op thread
    runs on the calling thread, so this is the model's whole CPU cost)."""
    from edgedet.streams.sources import open_reader, parse_sources

    reader = open_reader(parse_sources(str(video))[0])
    try:
        frames = [rgb for (rgb, _), _ in zip(reader.frames(), range(batch))]
    finally:
        reader.close()
    x = det.preprocess(frames)[0]
    det.infer(x)
    c0 = time.thread_time()
    for _ in range(calls):
        det.infer(x)
    return round((time.thread_time() - c0) / (calls * batch) * 1e3, 2)


def batched_4_streams(det, video: Path, frames: int, repeats: int) -> dict:
    from edgedet.streams import Pipeline

    def separate():
        threads = [
            threading.Thread(target=sequential, args=(det, str(video), frames)) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    v = [str(video)] * 4
    variants = {
        "separate_loops": separate,
        "batched": lambda: list(Pipeline(det, v, max_frames=frames)),
        "batched_one_call": lambda: list(Pipeline(det, v, max_frames=frames, model_workers=1)),
        "pipeline_batch1": lambda: list(Pipeline(det, v, max_frames=frames, batch=1)),
    }
    figures, _ = interleaved(variants, repeats, 4 * frames)
    pipe = Pipeline(det, v, max_frames=frames)
    list(pipe)
    cpu = {}
    sequential(det, str(video), frames, cpu=cpu)
    out = {
        "streams": 4,
        "frames_per_stream": frames,
        "variants": figures,
        "batch": pipe.batch,
        "model_workers": pipe.model_workers,
        "mean_batch_size": round(float(np.mean(pipe.stats.batch_sizes)), 2),
        # where the time goes: is one batch-4 call cheaper per image than four batch-1 calls?
        "model_cpu_ms_per_image": {
            "batch1": model_cpu_per_image(det, video, 1),
            "batch4": model_cpu_per_image(det, video, 4),
        },
        "separate_loop_thread_cpu_ms_per_frame": {
            k: round(x / frames * 1e3, 2) for k, x in cpu.items()
        },
    }
    for name in ("batched", "batched_one_call", "pipeline_batch1"):
        out[f"speedup_{name}_vs_separate_wall"] = round(
            figures[name]["fps"] / figures["separate_loops"]["fps"], 3
        )
    out["speedup_batched_vs_separate_per_cpu_s"] = round(
        figures["batched"]["frames_per_cpu_s"] / figures["separate_loops"]["frames_per_cpu_s"], 3
    )
    return out


YOLO_PREDICT = {"imgsz": 640, "conf": 0.25, "iou": 0.7, "max_det": 300}


def yolo_models(work: Path) -> tuple[Path, Path] | None:
    """Ultralytics' own ONNX export of yolov8n.yaml (random weights with benchmarks/e2e.py's
    class-bias prior) and edgedet's file made from that same ONNX by attach-nms, with the NMS
    settings of Ultralytics' predict (conf, iou, max_det; its 30000 candidates before NMS); None
    without ultralytics.
    """
    from benchmarks.e2e import _rename_input, ultralytics_onnx
    from edgedet.nms.params import NMSParams
    from edgedet.onnx.byo.attach import ByoSpec, attach_file

    source = ultralytics_onnx(work)
    if source is None:
        return None
    ours = work / "yolo_edgedet.onnx"
    nms = NMSParams(
        score_threshold=YOLO_PREDICT["conf"],
        iou_threshold=YOLO_PREDICT["iou"],
        max_output_boxes=YOLO_PREDICT["max_det"],
        top_k=30000,
    )
    attach_file(
        _rename_input(source, work / "yolo_base.onnx"),
        ours,
        ByoSpec(combined="output0", box_format="cxcywh"),
        nms,
        "edgedet",
    )
    return source, ours


def matched(a: tuple, b: tuple, iou: float = 0.9) -> tuple[int, int]:
    """(boxes of ``a`` with a same-class box of ``b`` at IoU >= iou, boxes of ``a``); a, b: (xyxy,
    classes)."""
    (ba, ca), (bb, cb) = a, b
    if len(ba) == 0 or len(bb) == 0:
        return 0, len(ba)
    lt, rb = (
        np.maximum(ba[:, None, :2], bb[None, :, :2]),
        np.minimum(ba[:, None, 2:], bb[None, :, 2:]),
    )
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)

    def area(x):
        return np.prod(x[:, 2:] - x[:, :2], axis=1)

    ious = inter / (area(ba)[:, None] + area(bb)[None, :] - inter + 1e-9)
    ious[ca[:, None] != cb[None, :]] = 0
    return int((ious.max(axis=1) >= iou).sum()), len(ba)


def versus_ultralytics(work: Path, video: Path, frames: int, repeats: int) -> dict | str:
    """YOLO(onnx).predict(video, stream=True) against edgedet on the same ONNX and video,
    interleaved."""
    if not importlib.util.find_spec("ultralytics"):
        return (
            "not measured: ultralytics is not installed on this machine (pip install ultralytics)"
        )
    import ultralytics
    from ultralytics import YOLO

    import edgedet

    source, ours = yolo_models(work)
    ul = YOLO(str(source), task="detect")

    def run_ultralytics():
        out = []
        for r in ul.predict(str(video), stream=True, verbose=False, save=False, **YOLO_PREDICT):
            out.append((r.boxes.xyxy.numpy(), r.boxes.cls.numpy().astype(int)))
            if len(out) >= frames:
                break
        return out

    def run_edgedet(det, **options):
        return [
            (r.detections.boxes, r.detections.class_ids)
            for r in det.stream(str(video), max_frames=frames, **options)
        ]

    with (
        edgedet.load(ours, providers=["cpu"], threads=1) as t1,
        edgedet.load(ours, providers=["cpu"]) as tall,
    ):
        variants = {
            "ultralytics": run_ultralytics,
            "edgedet_pipelined_ort1": lambda: run_edgedet(t1),
            "edgedet_pipelined_ort_default": lambda: run_edgedet(tall),
            "edgedet_sequential_ort1": lambda: [
                (d.boxes, d.class_ids) for d in sequential(t1, str(video), frames)
            ],
        }
        # warm-up (Ultralytics warms its model up on the first call)
        (
            run_ultralytics(),
            run_edgedet(t1),
        )
        figures, last = interleaved(variants, repeats, frames)
        workers = t1.stream(str(video)).model_workers
    pairs = list(zip(last["ultralytics"], last["edgedet_pipelined_ort1"]))
    agreement = {}
    for iou in (0.5, 0.9):
        ul_hit, ul_n = np.sum([matched(u, e, iou) for u, e in pairs], axis=0)
        ed_hit, ed_n = np.sum([matched(e, u, iou) for u, e in pairs], axis=0)
        agreement[f"iou_{iou}_same_class"] = {
            "ultralytics_boxes_found_by_edgedet": round(float(ul_hit / max(ul_n, 1)), 3),
            "edgedet_boxes_found_by_ultralytics": round(float(ed_hit / max(ed_n, 1)), 3),
        }
    best = max(
        (k for k in figures if k.startswith("edgedet_pipelined")), key=lambda k: figures[k]["fps"]
    )
    return {
        "model": (
            "yolov8n.yaml, random weights, Ultralytics' ONNX export at 640 (fixed batch 1);"
            " edgedet: the same ONNX with attach-nms (EdgeDetNMS, host NMS on CPU)"
        ),
        "ultralytics": ultralytics.__version__,
        "predict_settings": YOLO_PREDICT,
        "frames": frames,
        "ultralytics_pipeline": (
            "cv2.VideoCapture decode, letterbox, ORT (its default session options), "
            "torchvision NMS, Results objects; one thread"
        ),
        "edgedet_pipelined_ort1_model_workers": workers,
        "variants": figures,
        "detections_per_frame": {
            "ultralytics": round(float(ul_n) / frames, 1),
            "edgedet": round(float(ed_n) / frames, 1),
        },
        "agreement": agreement,
        "best_edgedet": best,
        "speedup_best_edgedet_vs_ultralytics": round(
            figures[best]["fps"] / figures["ultralytics"]["fps"], 3
        ),
        "speedup_edgedet_sequential_vs_ultralytics": round(
            figures["edgedet_sequential_ort1"]["fps"] / figures["ultralytics"]["fps"], 3
        ),
    }


def live_latency(det, seconds: float, consumer_ms: float = 50.0) -> dict:
    import socket

    sys.path.insert(0, str(HELPERS))
    from mjpeg_sender import read_stamp

    from edgedet.streams import Pipeline

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = subprocess.Popen(
        [sys.executable, str(HELPERS / "mjpeg_sender.py"), str(port), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sender.stdout.readline()
        pipe = Pipeline(det, f"http://127.0.0.1:{port}/")
        lat, age, t_end = [], [], time.perf_counter() + seconds
        for r in pipe:
            lat.append(r.latency)
            age.append(time.time() - read_stamp(r.image))
            time.sleep(consumer_ms / 1e3)
            if time.perf_counter() > t_end:
                break
    finally:
        sender.kill()
        sender.wait()
    out = {
        "source_fps": 30,
        "consumer_sleep_ms": consumer_ms,
        "seconds": seconds,
        "results": len(lat),
        "dropped": pipe.dropped,
        "frames_decoded": pipe.stats.per_stream[0]["frames_decoded"],
    }
    for name, xs in (("capture_to_result_ms", lat), ("sender_to_result_ms", age)):
        xs = np.asarray(xs[5:]) * 1e3
        third = len(xs) // 3
        minutes = (
            [np.median(xs[i : i + 400]) for i in range(0, len(xs), 400)] if len(xs) >= 800 else []
        )
        out[name] = {
            "p50": round(float(np.percentile(xs, 50)), 1),
            "p99": round(float(np.percentile(xs, 99)), 1),
            "median_per_400_results": [round(float(m), 1) for m in minutes],
            "first_third_median": round(float(np.median(xs[:third])), 1),
            "last_third_median": round(float(np.median(xs[-third:])), 1),
        }
    out["p99_within_p50_plus_2_intervals"] = (
        out["capture_to_result_ms"]["p99"] <= out["capture_to_result_ms"]["p50"] + 66.7
    )
    return out


SECTIONS = ("sequential", "emulated", "batched", "live", "ultralytics")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="benchmarks/results/streams.json")
    parser.add_argument("--frames", type=int, default=60, help="frames of the 1080p video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime intra-op threads (emulated, batched, live)",
    )
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument(
        "--device-ms", type=float, default=15.0, help="emulated device: ms per model call"
    )
    parser.add_argument(
        "--live-only", action="store_true", help="only the live latency measurement"
    )
    parser.add_argument(
        "--consumer-ms", type=float, default=50.0, help="live: the consumer's sleep per result"
    )
    parser.add_argument(
        "--yolo-frames", type=int, default=30, help="frames for the Ultralytics comparison"
    )
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="sections to run"
    )
    args = parser.parse_args(argv)
    import edgedet

    sections = ("live",) if args.live_only else args.only
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, video = export_nano(tmp), None if args.live_only else make_video(tmp, args.frames)
        results = {
            "model": "nano (ONNX, dynamic batch, NMS in graph), ONNX Runtime CPU",
            "ort_threads": args.threads,
            "video": f"1920x1080 H.264 yuv420p, {args.frames} frames",
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "includes": __doc__.split("in one run:")[1].split("Usage")[0].strip(),
        }
        if "sequential" in sections:
            print("pipelined vs sequential ...", flush=True)
            results["pipelined_vs_sequential"] = pipelined_vs_sequential(model, video, args.repeats)
            print(results["pipelined_vs_sequential"], flush=True)
        with edgedet.load(model, providers=["cpu"], threads=args.threads) as det:
            if "emulated" in sections:
                print(
                    f"pipelined vs sequential, emulated device ({args.device_ms} ms per call) ...",
                    flush=True,
                )
                results["pipelined_vs_sequential_emulated_device"] = emulated_device(
                    det, video, args.device_ms, args.repeats
                )
                print(results["pipelined_vs_sequential_emulated_device"], flush=True)
            if "batched" in sections:
                print("4 streams batched vs 4 separate loops ...", flush=True)
                results["batched_4_streams"] = batched_4_streams(
                    det, video, min(30, args.frames), args.repeats
                )
                print(results["batched_4_streams"], flush=True)
            if "live" in sections:
                print("live latency ...", flush=True)
                results["live_latency"] = live_latency(det, args.live_seconds, args.consumer_ms)
                print(results["live_latency"], flush=True)
        if "ultralytics" in sections:
            print("Ultralytics YOLO(onnx).predict(video, stream=True) vs edgedet ...", flush=True)
            results["ultralytics"] = versus_ultralytics(
                tmp, video, min(args.yolo_frames, args.frames), args.repeats
            )
            print(results["ultralytics"], flush=True)
    results["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_results(args.json, "streams_live" if args.live_only else "streams", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
