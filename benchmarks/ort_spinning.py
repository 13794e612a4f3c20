"""ONNX Runtime thread spinning, one session per process: what a user's single detector sees.

Every (model, spinning setting) pair lives in its own worker process holding one edgedet detector
(`edgedet.load(model, spinning=...)`) and one model-only backend of the model without NMS (same
settings). The parent drives interleaved rounds over pipes: in each round every worker, in an order
rotated from round to round, times --calls end-to-end calls `det(path)` (decode, letterbox, model,
host NMS, map back) and --calls model-only `session.run` on an already letterboxed input; the
parent waits --gap seconds between workers so that a spinning tail of one (setting "on" keeps
a core busy for tens of milliseconds after each call) is not billed to the next. In-process
benchmarks that run several sessions in turn (benchmarks/e2e.py) cannot separate the settings:
there the tail of one session lands on the next one's run. --load N repeats the whole run with N
busy-looping processes competing for the cores (the "loaded" pass). Spinning settings: off (idle
threads sleep), run (busy-wait only while a run is in progress: session.force_spinning_stop),
on (ONNX Runtime's default). Ratios to read: each setting's p50 divided by "off"'s in the same pass.
Usage: python -m benchmarks.ort_spinning [--work data/e2e] [--rounds 10] [--calls 5] [--load 2]
       [--json benchmarks/results/ort_spinning.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_results

INCLUDES = __doc__.split("Usage:")[0].strip()
SETTINGS = ("off", "run", "on")


# ---------------------------------------------------------------------------------------- worker


def worker(model: str, raw: str, photo: str, spinning: str) -> None:
    """Serve timing requests on stdin: "e2e K" or "model K" -> one JSON list of seconds."""
    import edgedet
    from edgedet.backends.onnxruntime import OnnxRuntimeBackend
    from edgedet.preprocess import letterbox, read_image, to_input

    det = edgedet.load(model, spinning=spinning)
    raw_backend = OnnxRuntimeBackend(raw, providers=["cpu"], spinning=spinning)
    spec = raw_backend.inputs[0]
    h, w = spec.shape[2], spec.shape[3]
    feed = {spec.name: to_input([letterbox(read_image(photo), h, w)[0]])}
    names = [o.name for o in raw_backend.outputs]
    session = raw_backend.session
    calls = {"e2e": lambda: det(photo), "model": lambda: session.run(names, feed)}
    for call in calls.values():  # warm-up
        for _ in range(3):
            call()
    options = session.get_session_options()
    config = {}
    for key in ("session.intra_op.allow_spinning", "session.force_spinning_stop"):
        try:
            config[key] = options.get_session_config_entry(key)
        except RuntimeError:  # never set: ONNX Runtime's default
            config[key] = None
    print("ready", json.dumps(config), flush=True)
    for line in sys.stdin:
        what, k = line.split()
        times = []
        for _ in range(int(k)):
            t0 = time.perf_counter()
            calls[what]()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)


# ---------------------------------------------------------------------------------------- parent


ROOT = Path(__file__).resolve().parents[1]


def start(model: Path, raw: Path, photo: Path, spinning: str) -> tuple[subprocess.Popen, dict]:
    """A worker process and the session config entries it reports."""
    cmd = [sys.executable, "-m", "benchmarks.ort_spinning", "--worker"]
    cmd += [str(model), str(raw), str(photo), spinning]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    word, _, config = proc.stdout.readline().partition(" ")
    if word != "ready":
        proc.kill()
        raise RuntimeError(f"worker {cmd} did not start (said {word!r})")
    return proc, json.loads(config)


def ask(proc: subprocess.Popen, what: str, calls: int) -> list[float]:
    proc.stdin.write(f"{what} {calls}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def _busy() -> None:
    while True:
        pass


def one_pass(cases: dict, rounds: int, calls: int, gap: float, load: int) -> dict:
    """cases: name -> (model, raw, photo). Returns name -> setting -> figures."""
    hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(load)]
    for hog in hogs:
        hog.start()
    workers, configs = {}, {}
    for case, paths in cases.items():
        for s in SETTINGS:
            workers[case, s], configs[case, s] = start(*paths, s)
    times = {key: {"e2e": [], "model": []} for key in workers}
    try:
        keys = list(workers)
        for r in range(rounds):
            shift = r % len(keys)
            for key in keys[shift:] + keys[:shift]:
                for what in ("e2e", "model"):
                    times[key][what] += ask(workers[key], what, calls)
                    time.sleep(gap)
    finally:
        for proc in workers.values():
            proc.stdin.close()
            proc.wait()
        for hog in hogs:
            hog.terminate()
    out: dict = {}
    for (case, s), t in times.items():
        e2e, model = float(np.median(t["e2e"])), float(np.median(t["model"]))
        out.setdefault(case, {})[s] = {
            "e2e_p50_ms": round(e2e * 1e3, 2),
            "model_p50_ms": round(model * 1e3, 2),
            "e2e_min_ms": round(min(t["e2e"]) * 1e3, 2),
            "model_min_ms": round(min(t["model"]) * 1e3, 2),
            "e2e_over_model": round(e2e / model, 3),
            "session_config": configs[case, s],
        }
    for row in out.values():
        for s in SETTINGS:
            row[s]["e2e_vs_off"] = round(row[s]["e2e_p50_ms"] / row["off"]["e2e_p50_ms"], 3)
            row[s]["model_vs_off"] = round(row[s]["model_p50_ms"] / row["off"]["model_p50_ms"], 3)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="data/e2e")
    ap.add_argument("--photo", default="/work/shared/data/images/photo01.jpg")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--gap", type=float, default=0.2)
    ap.add_argument(
        "--load", type=int, default=2, help="busy processes in the loaded pass; 0: none"
    )
    ap.add_argument("--json", default="benchmarks/results/ort_spinning.json")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    import onnxruntime as ort

    from benchmarks.e2e import make_photos, nano_models, yolo_models

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    photos = make_photos(Path(args.photo), work)
    nano, (yolo, _) = nano_models(work), yolo_models(work)
    cases = {}
    for name, models in (("nano", nano), ("yolov8n", yolo)):
        for size, photo in photos.items():
            cases[f"{name} {size}"] = (models["edgedet"], models["none"], photo)
    passes = {"idle": 0} | ({"loaded": args.load} if args.load else {})
    results = {}
    for label, load in passes.items():
        before = os.getloadavg()
        results[label] = {
            "busy_processes": load,
            "load_before": before,
            "cases": one_pass(cases, args.rounds, args.calls, args.gap, load),
            "load_after": os.getloadavg(),
        }
        for case, row in results[label]["cases"].items():
            for s, f in row.items():
                print(
                    f"{label:<6} {case:<16} {s:<4} e2e {f['e2e_p50_ms']:7.2f} ms"
                    f" (x{f['e2e_vs_off']:.3f} of off)  model {f['model_p50_ms']:7.2f} ms"
                    f" (x{f['model_vs_off']:.3f})  e2e/model {f['e2e_over_model']:.3f}"
                )
    write_results(
        args.json,
        "ort_spinning",
        {
            "includes": INCLUDES,
            "onnxruntime": ort.__version__,
            "rounds": args.rounds,
            "calls_per_block": args.calls,
            "gap_s": args.gap,
            "passes": results,
        },
    )


if __name__ == "__main__":
    main()
