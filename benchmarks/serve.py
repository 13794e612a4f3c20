"""`edgedet serve` throughput and latency: Triton's dynamic batching on vs off, same clients, same
run.

Starts `edgedet serve MODEL` (a real tritonserver from nvidia-pytriton) on loopback ports, once per
variant (VARIANTS: with dynamic batching, and with ``--no-dynamic-batching``, one request per model
call), the order rotated each of ``--rounds`` rounds so machine load hits all alike. Each round:
``--clients`` threads, each with its own gRPC client, send ``--requests`` encoded images one after
another (closed loop). Reported:
requests/s over the round's wall time, per-request latency p50/p99 (client send -> response
decoded), the mean batch Triton formed (nv_inference_count / nv_inference_exec_count from /metrics),
and Triton's own split of the server time (queue per request; the Python callable per model call).
What the figures include: JPEG decode, letterbox, ONNX Runtime inference, unletterbox on the server,
gRPC both ways; server start-up is excluded.

Run in the serve environment:  .venv-serve/bin/python benchmarks/serve.py --model nano.onnx
(nano with a dynamic batch: `edgedet export --model nano --dynamic-batch -o nano.onnx`).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ms, write_results  # noqa: E402
from edgedet.errors import ServeError  # noqa: E402
from edgedet.serve import serve_in_subprocess  # noqa: E402


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def start(model: str, extra: list[str], max_batch: int, delay_us: int):
    """Start `edgedet serve` and wait until the model is ready (`edgedet serve` itself restarts
    Triton when an instance loses PyTriton's start-up race: edgedet.serve.instance_start_race)."""
    args = ["--max-batch", str(max_batch), "--queue-delay-us", str(delay_us), *extra]
    log = tempfile.TemporaryFile()  # a pipe nobody reads would fill up and stall the server
    try:
        proc, urls = serve_in_subprocess(model, args, log=log)
    except ServeError as exc:
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"{exc}; its last line: {tail[0]}") from None
    return proc, urls["grpc"], urls["metrics"]


def stop(proc) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()


def load_round(
    url: str, images: list[bytes], clients: int, requests: int
) -> tuple[float, list[float]]:
    from edgedet.client import DetectorClient

    def worker(c: int) -> list[float]:
        lat = []
        with DetectorClient(url) as cl:
            cl.infer_raw(images[c % len(images)])  # connection warm-up, not timed
            barrier.wait()
            for j in range(requests):
                t0 = time.perf_counter()
                cl.infer_raw(images[(c + j) % len(images)])
                lat.append(time.perf_counter() - t0)
        return lat

    import threading

    barrier = threading.Barrier(clients + 1)
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, c) for c in range(clients)]
        barrier.wait()
        t0 = time.perf_counter()
        latencies = [x for f in futures for x in f.result()]
        wall = time.perf_counter() - t0
    return wall, latencies


# Variants of one server, each started fresh per round (name -> extra `edgedet serve` options). The
# baseline is the same server, same instance count and ONNX Runtime threads, with Triton's dynamic
# batching off: every request is one model call. "dynamic_serial_decode" isolates what decoding a
# batch's images in threads buys; the later --queue-delay-us wins over the default one start()
# passes.
VARIANTS = {
    "no_batching": ["--no-dynamic-batching"],
    "dynamic": [],
    "dynamic_serial_decode": ["--decode-threads", "1"],
    "dynamic_delay_20ms": ["--queue-delay-us", "20000"],
    # not the baseline: the other way to keep two cores busy without batching, reported beside it
    "no_batching_2_instances": ["--no-dynamic-batching", "--instances", "2"],
    "dynamic_2_instances": ["--instances", "2"],
}
# Triton's cumulative per-model counters (microseconds, or counts), read before and after each
# round.
COUNTERS = (
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
)


def run(
    model: str,
    images: list[bytes],
    clients: int,
    requests: int,
    rounds: int,
    max_batch: int,
    delay_us: int,
    variants: list[str],
    common: list[str],
) -> dict:
    per_mode: dict[str, dict] = {v: {"walls": [], "lat": [], "counts": []} for v in variants}
    for r in range(rounds):
        # rotate: load hits each alike
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for mode in order:
            proc, url, murl = start(model, VARIANTS[mode] + common, max_batch, delay_us)
            try:
                before = [metric(murl, c) for c in COUNTERS]
                wall, lat = load_round(url, images, clients, requests)
                time.sleep(1.0)
                delta = dict(zip(COUNTERS, (metric(murl, c) - b for c, b in zip(COUNTERS, before))))
            finally:
                stop(proc)
            per_mode[mode]["walls"].append(wall)
            per_mode[mode]["lat"].extend(lat)
            per_mode[mode]["counts"].append(delta)
            batch = delta["nv_inference_count"] / max(delta["nv_inference_exec_count"], 1)
            print(
                f"round {r} {mode}: {clients * requests / wall:.2f} req/s, mean batch {batch:.2f}, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    out = {}
    for mode, d in per_mode.items():
        total = clients * requests * rounds
        lat = np.array(d["lat"])
        summed = {c: sum(x[c] for x in d["counts"]) for c in COUNTERS}
        n, e = max(summed["nv_inference_count"], 1), max(summed["nv_inference_exec_count"], 1)
        out[mode] = {
            "requests_per_s": round(total / sum(d["walls"]), 2),
            "latency_ms": {
                "p50": ms(float(np.percentile(lat, 50))),
                "p99": ms(float(np.percentile(lat, 99))),
            },
            "mean_batch": round(n / e, 2),
            "rounds_wall_s": [round(w, 2) for w in d["walls"]],
            "rounds_requests_per_s": [round(clients * requests / w, 2) for w in d["walls"]],
            # Triton's per-request counters: every request of a batch is charged the whole model
            # call, so sum / requests = one call; / mean batch = one image's share of the Python
            # callable.
            "server_ms": {
                "queue_per_request": round(summed["nv_inference_queue_duration_us"] / n / 1e3, 1),
                "callable_per_call": round(
                    summed["nv_inference_compute_infer_duration_us"] / n / 1e3, 1
                ),
                "callable_per_image": round(
                    summed["nv_inference_compute_infer_duration_us"] / n / 1e3 / (n / e), 1
                ),
                "inputs_outputs_per_call": round(
                    (
                        summed["nv_inference_compute_input_duration_us"]
                        + summed["nv_inference_compute_output_duration_us"]
                    )
                    / n
                    / 1e3,
                    1,
                ),
            },
        }
    base = out.get("no_batching")
    if base:
        out["ratio_vs_no_batching"] = {
            m: round(out[m]["requests_per_s"] / base["requests_per_s"], 2)
            for m in out
            if m != "no_batching"
        }
        # per round (same minute of machine load): the spread of the ratio
        out["round_ratios_vs_no_batching"] = {
            m: [
                round(w0 / w, 2)
                for w, w0 in zip(per_mode[m]["walls"], per_mode["no_batching"]["walls"])
            ]
            for m in per_mode
            if m != "no_batching"
        }
    return out


def model_only(model: str, images: list[bytes], rounds: int) -> dict:
    """The same work without Triton, in this process: Detector.predict on the 8 decoded photos as 8
    calls of one and as one batch of 8, interleaved. Says whether a batch is any cheaper per image
    for the model itself.
    """
    import edgedet
    from edgedet.serve import decode

    arrays = [decode(b, i) for i, b in enumerate(images)]
    detector = edgedet.load(model, backend="onnxruntime")
    variants = {
        "8_calls_of_1": lambda: [detector.predict([a]) for a in arrays],
        "1_call_of_8": lambda: detector.predict(arrays),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    decode_s = []
    for fn in variants.values():  # warm-up: ONNX Runtime plans each batch shape once
        fn()
    for _ in range(rounds):
        t0 = time.perf_counter()
        [decode(b, i) for i, b in enumerate(images)]
        decode_s.append(time.perf_counter() - t0)
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    detector.close()
    per_image = {k: ms(float(np.median(v)) / len(arrays)) for k, v in times.items()}
    return {
        "predict_ms_per_image_median": per_image,
        "decode_ms_per_image_median": ms(float(np.median(decode_s)) / len(images)),
        "batch_vs_single_per_image": round(per_image["8_calls_of_1"] / per_image["1_call_of_8"], 2),
        "rounds": rounds,
        "includes": (
            "predict = letterbox + ONNX Runtime + host NMS + unletterbox; decode = "
            "edgedet.serve.decode of the JPEG bytes, serially"
        ),
    }


def photos(folder: str) -> list[bytes]:
    files = sorted(Path(folder).glob("*.jpg"))
    if not files:
        raise SystemExit(f"no .jpg files in {folder}")
    return [f.read_bytes() for f in files]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="edgedet ONNX file with a dynamic batch (nano)")
    ap.add_argument(
        "--images", default="../shared/data/images", help="folder of .jpg files to send"
    )
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=24, help="requests per client per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--queue-delay-us", type=int, default=2000)
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    ap.add_argument(
        "--serve-args",
        default="",
        help="extra `edgedet serve` options for every variant, e.g. '--threads 2'",
    )
    ap.add_argument("--out", default="benchmarks/results/serve.json")
    a = ap.parse_args(argv)
    variants = a.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    load_before = os.getloadavg()
    in_process = model_only(a.model, photos(a.images), max(a.rounds, 3))
    results = run(
        a.model,
        photos(a.images),
        a.clients,
        a.requests,
        a.rounds,
        a.max_batch,
        a.queue_delay_us,
        variants,
        a.serve_args.split(),
    )
    settings = {
        k: getattr(a, k)
        for k in ("clients", "requests", "rounds", "max_batch", "queue_delay_us", "serve_args")
    }
    path = write_results(
        a.out,
        "serve",
        {
            "model": os.path.basename(a.model),
            "settings": settings,
            "variants": {v: VARIANTS[v] for v in variants},
            "results": results,
            "model_only_in_process": in_process,
            "load_average_1_5_15min": {
                "before": [round(x, 2) for x in load_before],
                "after": [round(x, 2) for x in os.getloadavg()],
            },
            "includes": (
                "server: JPEG decode + letterbox + ONNX Runtime (CPU) + unletterbox; gRPC both"
                " ways; closed-loop clients on the same machine; server start-up excluded"
            ),
            "baseline": (
                "no_batching: the same server (same instances, same ONNX Runtime threads) with "
                "--no-dynamic-batching (one request per model call), same run, rounds rotated"
            ),
        },
    )
    rates = ", ".join(f"{m} {results[m]['requests_per_s']}" for m in variants)
    print(
        f"req/s: {rates}; ratios vs no_batching {results.get('ratio_vs_no_batching', {})} -> {path}"
    )


if __name__ == "__main__":
    main()
