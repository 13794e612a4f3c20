"""`edgedet serve` throughput and latency: Triton's dynamic batching on vs off, same clients, same run.

Starts `edgedet serve MODEL` (a real tritonserver from nvidia-pytriton) on loopback ports, once with
dynamic batching and once with ``--no-dynamic-batching`` (one request per model call), alternating
``--rounds`` times so machine load hits both alike. Each round: ``--clients`` threads, each with its
own gRPC client, send ``--requests`` encoded images one after another (closed loop). Reported:
requests/s over the round's wall time, per-request latency p50/p99 (client send -> response decoded),
and the mean batch Triton formed (nv_inference_count / nv_inference_exec_count from /metrics).
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
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ms, write_results  # noqa: E402
from edgedet.serve import free_ports  # noqa: E402


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def start(model: str, dynamic: bool, max_batch: int, delay_us: int):
    import tritonclient.grpc as grpcclient

    http, grpc, metrics = free_ports(3)
    cmd = [sys.executable, "-m", "edgedet.cli", "serve", model, "--http-port", str(http), "--grpc-port", str(grpc),
           "--metrics-port", str(metrics), "--max-batch", str(max_batch), "--queue-delay-us", str(delay_us)]
    proc = subprocess.Popen(cmd + ([] if dynamic else ["--no-dynamic-batching"]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if client.is_model_ready("edgedet"):
                return proc, f"127.0.0.1:{grpc}", f"http://127.0.0.1:{metrics}/metrics"
        except Exception:  # not listening yet
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("edgedet serve did not start; run it by hand to see why")


def stop(proc) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()


def load_round(url: str, images: list[bytes], clients: int, requests: int) -> tuple[float, list[float]]:
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


def run(model: str, images: list[bytes], clients: int, requests: int, rounds: int, max_batch: int, delay_us: int) -> dict:
    per_mode: dict[str, dict] = {"dynamic": {"walls": [], "lat": [], "batch": []},
                                 "no_batching": {"walls": [], "lat": [], "batch": []}}
    for r in range(rounds):
        order = ("dynamic", "no_batching") if r % 2 == 0 else ("no_batching", "dynamic")
        for mode in order:
            proc, url, murl = start(model, mode == "dynamic", max_batch, delay_us)
            try:
                before = metric(murl, "nv_inference_count"), metric(murl, "nv_inference_exec_count")
                wall, lat = load_round(url, images, clients, requests)
                time.sleep(1.0)
                n = metric(murl, "nv_inference_count") - before[0]
                e = metric(murl, "nv_inference_exec_count") - before[1]
            finally:
                stop(proc)
            per_mode[mode]["walls"].append(wall)
            per_mode[mode]["lat"].extend(lat)
            per_mode[mode]["batch"].append(n / max(e, 1))
            print(f"round {r} {mode}: {clients * requests / wall:.1f} req/s, mean batch {n / max(e, 1):.2f}", flush=True)
    out = {}
    for mode, d in per_mode.items():
        total = clients * requests * rounds
        lat = np.array(d["lat"])
        out[mode] = {"requests_per_s": round(total / sum(d["walls"]), 2),
                     "latency_ms": {"p50": ms(float(np.percentile(lat, 50))), "p99": ms(float(np.percentile(lat, 99)))},
                     "mean_batch": round(float(np.mean(d["batch"])), 2), "rounds_wall_s": [round(w, 2) for w in d["walls"]]}
    out["ratio_dynamic_vs_no_batching"] = round(out["dynamic"]["requests_per_s"] / out["no_batching"]["requests_per_s"], 2)
    return out


def photos(folder: str) -> list[bytes]:
    files = sorted(Path(folder).glob("*.jpg"))
    if not files:
        raise SystemExit(f"no .jpg files in {folder}")
    return [f.read_bytes() for f in files]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="edgedet ONNX file with a dynamic batch (nano)")
    ap.add_argument("--images", default="../shared/data/images", help="folder of .jpg files to send")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=24, help="requests per client per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--queue-delay-us", type=int, default=2000)
    ap.add_argument("--out", default="benchmarks/results/serve.json")
    a = ap.parse_args(argv)
    load_before = os.getloadavg()
    results = run(a.model, photos(a.images), a.clients, a.requests, a.rounds, a.max_batch, a.queue_delay_us)
    settings = {k: getattr(a, k) for k in ("clients", "requests", "rounds", "max_batch", "queue_delay_us")}
    path = write_results(a.out, "serve", {
        "model": os.path.basename(a.model), "settings": settings, "results": results,
        "load_average_1_5_15min": {"before": [round(x, 2) for x in load_before],
                                   "after": [round(x, 2) for x in os.getloadavg()]},
        "includes": "server: JPEG decode + letterbox + ONNX Runtime (CPU) + unletterbox; gRPC both ways; "
                    "closed-loop clients on the same machine; server start-up excluded",
        "baseline": "the same server with --no-dynamic-batching (one request per model call), same run, "
                    "rounds alternated"})
    print(f"dynamic batching: {results['dynamic']['requests_per_s']} req/s, no batching: "
          f"{results['no_batching']['requests_per_s']} req/s, ratio {results['ratio_dynamic_vs_no_batching']} -> {path}")


if __name__ == "__main__":
    main()
