"""Stream runtime: pipelined vs sequential, 4 streams batched vs 4 separate loops, live latency.

All with nano exported to ONNX (dynamic batch, NMS in the graph) on ONNX Runtime CPU, in one run:
  pipelined_vs_sequential  a generated 1920x1080 H.264 (yuv420p) moving-shapes video. sequential:
      one thread, per frame PyAV decode -> det([rgb]) (letterbox, model, NMS, boxes back).
      pipelined: det.stream(video): decode+letterbox thread | model thread | post-process thread.
      Both decode the same file and must give identical detections for every frame (checked).
      Runs alternate (seq, pipe, seq, pipe, ...) so background load hits both alike; the ratio is
      of the median wall times.
  pipelined_vs_sequential_emulated_device  the same, with the backend call replaced by a sleep of
      --device-ms (CPU free, as during a GPU inference) returning ONNX Runtime's outputs computed
      beforehand for the same input: how much host work (decode, letterbox, NMS, Python) the
      pipeline hides when the model does not run on the CPU. An emulation, labelled as one.
  batched_4_streams  the same video as 4 streams. batched: one Pipeline, 4 streams gathered into
      one batch-4 model call. separate: 4 sequential loops (as above) in 4 threads sharing the
      session (what a user writes without a batching runtime). Also the pipeline at batch 1.
      Reported as wall-clock FPS and as frames per CPU-second of the process (all threads): on a
      machine shared with other work, more runnable threads get more CPU share, so the wall
      figures reward thread count; frames per CPU-second measures the work each way needs.
  live_latency  tests/helpers/mjpeg_sender.py (HTTP-MJPEG, 400x240 at 30 fps, a separate
      process) read through the pipeline by a consumer slower than the source (sleeps
      --consumer-ms per result, default 50 ms); capture-to-result latency and sender-to-result age (the send time is
      stamped in the pixels), first vs last third, drops counted.
  ultralytics  YOLO(onnx).predict(video, stream=True): not measured (see the JSON's note).
Usage: python -m benchmarks.streams [--json benchmarks/results/streams.json] [--frames 60]
       python -m benchmarks.streams --live-only --live-seconds 300 --consumer-ms 150 --json benchmarks/results/streams_live.json
"""

from __future__ import annotations

import argparse
import importlib.util
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
    return all(np.array_equal(x.boxes, y.boxes) and np.array_equal(x.scores, y.scores) for x, y in zip(a, b))


def timed(fn):
    """(wall seconds, process CPU seconds of all threads, result)."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    return time.perf_counter() - t0, time.process_time() - c0, res


def pipelined_vs_sequential(det, video: Path, repeats: int) -> dict:
    seq_t, pipe_t, seq_c, pipe_c, identical, n = [], [], [], [], True, 0
    for _ in range(repeats):
        cpu = {}
        t, c, ref = timed(lambda: sequential(det, str(video), cpu=cpu))
        seq_t.append(t)
        seq_c.append(c)
        t, c, res = timed(lambda: [r.detections for r in det.stream(str(video))])
        pipe_t.append(t)
        pipe_c.append(c)
        identical &= len(ref) == len(res) and same(ref, res)
        n = len(res)
    s, p = float(np.median(seq_t)), float(np.median(pipe_t))
    return {"frames": n, "sequential_s": [round(x, 3) for x in seq_t], "pipelined_s": [round(x, 3) for x in pipe_t],
            "sequential_cpu_s": [round(x, 3) for x in seq_c], "pipelined_cpu_s": [round(x, 3) for x in pipe_c],
            "sequential_fps": round(n / s, 2), "pipelined_fps": round(n / p, 2), "speedup": round(s / p, 3),
            "identical_detections": bool(identical),
            # the calling thread's CPU time per frame (PyAV's own decoder threads not included);
            # with a core per stage the pipeline's rate is bounded by its slowest stage, so this
            # is a bound from measured CPU times, not a measurement of the pipeline
            "sequential_thread_cpu_ms_per_frame": {k: round(v / n * 1e3, 2) for k, v in cpu.items()},
            "pipelined_speedup_bound_from_cpu": round(sum(cpu.values()) / max(cpu.values()), 3)}


class EmulatedDevice:
    """Stands in for a GPU backend: each call sleeps ``ms`` (the CPU is free meanwhile, as during
    a TensorRT call) and returns the ONNX Runtime outputs computed beforehand for that exact input
    (keyed by its bytes), so detections stay real. Measures how much host work the pipeline hides."""

    def __init__(self, backend, ms: float) -> None:
        self.real, self.seconds, self.cache = backend, ms / 1e3, {}
        self.inputs, self.outputs, self.name = backend.inputs, backend.outputs, "emulated-device"

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
    det.backend = EmulatedDevice(real, ms)
    try:
        sequential(det, str(video))  # fill the cache with the real outputs
        res = pipelined_vs_sequential(det, video, repeats)
    finally:
        det.backend = real
    res.pop("pipelined_speedup_bound_from_cpu", None)
    return {"device_ms_per_call": ms, **res}


def batched_4_streams(det, video: Path, frames: int, repeats: int) -> dict:
    from edgedet.streams import Pipeline

    def separate():
        threads = [threading.Thread(target=sequential, args=(det, str(video), frames)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    runs = {"separate_loops": ([], []), "batched": ([], []), "pipeline_batch1": ([], [])}
    sizes = []
    for _ in range(repeats):
        pipe = Pipeline(det, [str(video)] * 4, max_frames=frames)
        for name, fn in (("separate_loops", separate), ("batched", lambda: list(pipe)),
                         ("pipeline_batch1", lambda: list(Pipeline(det, [str(video)] * 4, max_frames=frames, batch=1)))):
            wall, cpu, _ = timed(fn)
            runs[name][0].append(round(wall, 3))
            runs[name][1].append(round(cpu, 3))
        sizes = pipe.stats.batch_sizes
    n = 4 * frames
    out = {"streams": 4, "frames_per_stream": frames, "mean_batch_size": round(float(np.mean(sizes)), 2)}
    for name, (wall, cpu) in runs.items():
        out[name] = {"wall_s": wall, "cpu_s": cpu, "fps": round(n / float(np.median(wall)), 2),
                     "frames_per_cpu_s": round(n / float(np.median(cpu)), 2)}
    out["speedup_batched_vs_separate_wall"] = round(out["batched"]["fps"] / out["separate_loops"]["fps"], 3)
    out["speedup_batched_vs_separate_cpu"] = round(out["batched"]["frames_per_cpu_s"]
                                                   / out["separate_loops"]["frames_per_cpu_s"], 3)
    return out


def live_latency(det, seconds: float, consumer_ms: float = 50.0) -> dict:
    import socket

    sys.path.insert(0, str(HELPERS))
    from mjpeg_sender import read_stamp

    from edgedet.streams import Pipeline

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = subprocess.Popen([sys.executable, str(HELPERS / "mjpeg_sender.py"), str(port), "30"],
                              stdout=subprocess.PIPE, text=True)
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
    out = {"source_fps": 30, "consumer_sleep_ms": consumer_ms, "seconds": seconds, "results": len(lat),
           "dropped": pipe.dropped, "frames_decoded": pipe.stats.per_stream[0]["frames_decoded"]}
    for name, xs in (("capture_to_result_ms", lat), ("sender_to_result_ms", age)):
        xs = np.asarray(xs[5:]) * 1e3
        third = len(xs) // 3
        minutes = [np.median(xs[i:i + 400]) for i in range(0, len(xs), 400)] if len(xs) >= 800 else []
        out[name] = {"p50": round(float(np.percentile(xs, 50)), 1), "p99": round(float(np.percentile(xs, 99)), 1),
                     "median_per_400_results": [round(float(m), 1) for m in minutes],
                     "first_third_median": round(float(np.median(xs[:third])), 1),
                     "last_third_median": round(float(np.median(xs[-third:])), 1)}
    out["p99_within_p50_plus_2_intervals"] = out["capture_to_result_ms"]["p99"] <= out["capture_to_result_ms"]["p50"] + 66.7
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="benchmarks/results/streams.json")
    parser.add_argument("--frames", type=int, default=60, help="frames of the 1080p video")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--device-ms", type=float, default=15.0, help="emulated device: ms per model call")
    parser.add_argument("--live-only", action="store_true", help="only the live latency measurement")
    parser.add_argument("--consumer-ms", type=float, default=50.0, help="live: the consumer's sleep per result")
    args = parser.parse_args(argv)
    import edgedet

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, video = export_nano(tmp), None if args.live_only else make_video(tmp, args.frames)
        with edgedet.load(model, providers=["cpu"], threads=args.threads) as det:
            results = {"model": "nano (ONNX, dynamic batch, NMS in graph), ONNX Runtime CPU",
                       "ort_threads": args.threads, "video": f"1920x1080 H.264 yuv420p, {args.frames} frames",
                       "includes": __doc__.split("in one run:")[1].split("Usage")[0].strip()}
            if args.live_only:
                results["live_latency"] = live_latency(det, args.live_seconds, args.consumer_ms)
                print(results["live_latency"], flush=True)
                write_results(args.json, "streams_live", results)
                return
            print("pipelined vs sequential ...", flush=True)
            results["pipelined_vs_sequential"] = pipelined_vs_sequential(det, video, args.repeats)
            print(results["pipelined_vs_sequential"], flush=True)
            print(f"pipelined vs sequential, emulated device ({args.device_ms} ms per call) ...", flush=True)
            results["pipelined_vs_sequential_emulated_device"] = emulated_device(det, video, args.device_ms,
                                                                                 args.repeats)
            print(results["pipelined_vs_sequential_emulated_device"], flush=True)
            print("4 streams batched vs 4 separate loops ...", flush=True)
            results["batched_4_streams"] = batched_4_streams(det, video, min(30, args.frames), args.repeats)
            print(results["batched_4_streams"], flush=True)
            print("live latency ...", flush=True)
            results["live_latency"] = live_latency(det, args.live_seconds, args.consumer_ms)
            print(results["live_latency"], flush=True)
    results["ultralytics"] = ("not measured: ultralytics is " + ("installed, but this script has no YOLO ONNX to give it"
                              if importlib.util.find_spec("ultralytics") else "not installed on this machine"))
    path = write_results(args.json, "streams", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
