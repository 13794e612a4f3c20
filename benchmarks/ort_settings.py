"""ONNX Runtime session settings for small detectors on the CPU, model only, interleaved rounds.

Each variant is one InferenceSession of the same file with one setting changed from edgedet's
session options (graph optimisation ORT_ENABLE_ALL, intra-op threads = the physical cores, thread
spinning only while a run is in progress (edgedet's spinning="run"), CPU memory arena on,
sequential execution, session.run with numpy in and out). Every round runs every variant once on
the same input, so background load hits all alike, and sleeps --settle seconds after each call
(0.1): the spinning_on variant (ONNX Runtime's default) keeps a core busy for ~60 ms after a run,
which would otherwise land on the next variant. The figure to read is each variant's p50 divided
by the default's p50 in the same run.
Usage: python -m benchmarks.ort_settings MODEL.onnx [MODEL.onnx ...] [--rounds 20] [--settle 0.1]
       [--json benchmarks/results/ort_settings.json]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.common import write_results
from edgedet.backends.onnxruntime import spinning_config

INCLUDES = __doc__.split("Usage:")[0].strip()


def variants(ort) -> dict:
    """name -> (function(options) that changes one setting, edgedet spinning setting)."""
    level = ort.GraphOptimizationLevel
    cores = os.cpu_count() or 1

    def setter(spinning="run", **values):  # "run": edgedet's default
        def apply(o):
            for k, v in values.items():
                setattr(o, k, v)

        return apply, spinning

    return {
        "default": setter(),
        "threads_1": setter(intra_op_num_threads=1),
        f"threads_{cores}": setter(intra_op_num_threads=cores),
        "opt_extended": setter(graph_optimization_level=level.ORT_ENABLE_EXTENDED),
        "opt_basic": setter(graph_optimization_level=level.ORT_ENABLE_BASIC),
        "no_cpu_arena": setter(enable_cpu_mem_arena=False),
        "parallel_inter_2": setter(
            execution_mode=ort.ExecutionMode.ORT_PARALLEL, inter_op_num_threads=2
        ),
        "spinning_off": setter(spinning="off"),
        "spinning_on": setter(spinning="on"),
    }


def runner(ort, path: str, change, iobinding: bool = False, spinning: str = "run"):
    """A no-argument callable running ``path`` once on a fixed random input."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    change(options)
    for key, value in spinning_config(spinning).items():
        options.add_session_config_entry(key, value)
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    spec = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in spec.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    names = [o.name for o in sess.get_outputs()]
    if not iobinding:
        return lambda: sess.run(names, {spec.name: x})
    binding = sess.io_binding()  # outputs pre-allocated once by ORT and reused: no copy per call
    binding.bind_cpu_input(spec.name, x)
    for name in names:
        binding.bind_output(name, "cpu")
    sess.run_with_iobinding(binding)

    def run():
        sess.run_with_iobinding(binding)
        return binding.get_outputs()

    return run


def sweep(path: str, rounds: int, settle: float = 0.1) -> dict:
    import onnxruntime as ort

    runs = {
        name: runner(ort, path, change, spinning=spinning)
        for name, (change, spinning) in variants(ort).items()
    }
    runs["iobinding"] = runner(ort, path, variants(ort)["default"][0], iobinding=True)
    times = {name: [] for name in runs}
    for r in range(rounds + 2):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            time.sleep(settle)
            if r >= 2:  # two warm-up rounds
                times[name].append(dt)
    base = float(np.median(times["default"]))
    return {
        name: {
            "p50_ms": round(float(np.median(v)) * 1e3, 2),
            "min_ms": round(min(v) * 1e3, 2),
            "p50_vs_default": round(float(np.median(v)) / base, 3),
        }
        for name, v in times.items()
    }


def main(argv=None) -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--settle", type=float, default=0.1, help="seconds of sleep after each call")
    ap.add_argument("--json", default="benchmarks/results/ort_settings.json")
    args = ap.parse_args(argv)
    results = {}
    load_before = os.getloadavg()
    for path in args.models:
        results[os.path.basename(path)] = sweep(path, args.rounds, args.settle)
        for name, row in results[os.path.basename(path)].items():
            print(
                f"{os.path.basename(path):<24} {name:<18} p50 {row['p50_ms']:8.2f} ms "
                f" x{row['p50_vs_default']:.3f}"
            )
    write_results(
        args.json,
        "ort_settings",
        {
            "includes": INCLUDES,
            "onnxruntime": ort.__version__,
            "rounds": args.rounds,
            "settle_s": args.settle,
            "load_average_before_after": [load_before, os.getloadavg()],
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
