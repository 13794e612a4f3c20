"""Run the CPU benchmarks that need nothing but this repository, one by one (`make bench`).

Each step is its own process, `python -m benchmarks.<name> ... --json OUT/<name>.json`, run from the
repository root, so one failing step does not stop the others. The steps:
  resize        OpenCV vs Pillow letterbox resize
  nms_host      host NMS vs torchvision.ops.batched_nms (needs torch)
  export        nano, shipped weights -> OUT/work/nano.onnx (edgedet export; reused when present)
  bench         `edgedet bench` on that file: per-stage latency, ONNX Runtime CPU
  ort_settings  ONNX Runtime session settings on that file, interleaved rounds
  decode_map    mAP with reduced-scale JPEG decoding vs full decoding on that file
  streams       the stream runtime, pipelined vs sequential (not with --quick: minutes of video)
--quick cuts repeats and images so the whole run takes minutes: its figures are a smoke run, not
results to publish. Benchmarks that take hours or need more than this repository (families,
precision, precision_budget, e2e, ort_spinning, serve, gpu/) are not run here: their docstrings
say how.
OUT/run_all.json lists every step: command, exit status, seconds.

Usage: python benchmarks/run_all.py [--out bench-output] [--quick] [--only nms_host bench ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("resize", "nms_host", "export", "bench", "ort_settings", "decode_map", "streams")
NEEDS_MODEL = ("bench", "ort_settings", "decode_map")


def commands(out: Path, quick: bool) -> dict[str, list[str]]:
    """step -> argv (after the interpreter), every output under ``out``."""
    model, work = str(out / "work" / "nano.onnx"), str(out / "work" / "decode_map")
    few = {"resize": "10", "nms_host": "8", "iters": "10", "warmup": "2", "rounds": "3"}
    full = {"resize": "50", "nms_host": "40", "iters": "100", "warmup": "10", "rounds": "20"}
    n = few if quick else full
    return {
        "resize": [
            "-m",
            "benchmarks.resize",
            "--repeats",
            n["resize"],
            "--json",
            str(out / "resize.json"),
        ],
        "nms_host": [
            "-m",
            "benchmarks.nms_host",
            "--repeats",
            n["nms_host"],
            "--json",
            str(out / "nms_host.json"),
        ],
        "export": ["-m", "edgedet.cli", "export", "--model", "nano", "-o", model],
        "bench": [
            "-m",
            "edgedet.cli",
            "bench",
            model,
            "--iters",
            n["iters"],
            "--warmup",
            n["warmup"],
            "--json",
            str(out / "bench_nano.json"),
        ],
        "ort_settings": [
            "-m",
            "benchmarks.ort_settings",
            model,
            "--rounds",
            n["rounds"],
            "--json",
            str(out / "ort_settings.json"),
        ],
        "decode_map": [
            "-m",
            "benchmarks.decode_map",
            "--model",
            model,
            "--work",
            work,
            "--json",
            str(out / "decode_map.json"),
            *(["--images", "20"] if quick else []),
        ],
        "streams": ["-m", "benchmarks.streams", "--json", str(out / "streams.json")],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-output", help="folder for the results and work files")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and images; no streams")
    ap.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    (out / "work").mkdir(parents=True, exist_ok=True)
    steps = list(args.only or [s for s in STEPS if not (args.quick and s == "streams")])
    model = out / "work" / "nano.onnx"
    if any(s in NEEDS_MODEL for s in steps) and "export" not in steps and not model.is_file():
        steps.insert(0, "export")  # the model steps need nano.onnx: export it first
    if "export" in steps and model.is_file():
        steps.remove("export")  # reused: re-exporting takes a minute and changes nothing
        print(f"== export: reusing {model}", flush=True)
    argvs = commands(out, args.quick)
    record, skip = [], set()
    for step in steps:
        if step in skip:
            continue
        cmd = [sys.executable, *argvs[step]]
        print(f"== {step}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT)
        seconds = round(time.perf_counter() - start, 1)
        record.append({"step": step, "command": cmd, "exit_status": rc, "seconds": seconds})
        print(f"== {step}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {seconds} s", flush=True)
        if step == "export" and rc != 0:
            print("== the model steps need nano.onnx: skipping them", flush=True)
            skip.update(NEEDS_MODEL)
    summary = {"quick": args.quick, "steps": record}
    (out / "run_all.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [r["step"] for r in record if r["exit_status"] != 0]
    print(
        f"== {len(record) - len(failed)} of {len(record)} steps ok"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + f"; results in {out}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
