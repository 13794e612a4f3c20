"""Letterbox resize: OpenCV (INTER_LINEAR, as edgedet.preprocess.letterbox) vs Pillow's bilinear.

The same uint8 RGB frame is shrunk to fit a 320x320 input (aspect kept) by each library,
alternating call by call so background load hits both alike; median wall ms over --repeats calls,
Pillow / OpenCV of the medians, and the same ratio of process CPU time per call (all threads;
steadier than wall time on a loaded machine). Included: the resize alone, numpy array in and out
(Pillow's Image.fromarray and np.asarray count on its side, as a Pillow path would need them); not
decode, padding or normalisation. OpenCV runs with its default thread count.
Usage: python -m benchmarks.resize [--repeats 50] [--json benchmarks/results/resize.json]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.common import write_results

INCLUDES = __doc__.split("Usage:")[0].strip()
SIZES = [(480, 640), (1080, 1920)]
TARGET = 320


def fitted(h: int, w: int) -> tuple[int, int]:
    scale = min(TARGET / h, TARGET / w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def run_size(h: int, w: int, repeats: int) -> dict:
    import cv2
    from PIL import Image

    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    nh, nw = fitted(h, w)
    sides = {
        "opencv": lambda: cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR),
        "pillow": lambda: np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BILINEAR)),
    }
    wall, cpu = {k: [] for k in sides}, {k: [] for k in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    med = {k: float(np.median(v)) * 1e3 for k, v in wall.items()}
    med_cpu = {k: float(np.median(v)) * 1e3 for k, v in cpu.items()}
    return {
        "from": [h, w],
        "to": [nh, nw],
        "opencv_ms": round(med["opencv"], 3),
        "pillow_ms": round(med["pillow"], 3),
        "pillow_over_opencv": round(med["pillow"] / med["opencv"], 1),
        "opencv_cpu_ms": round(med_cpu["opencv"], 3),
        "pillow_cpu_ms": round(med_cpu["pillow"], 3),
        "cpu_pillow_over_opencv": round(med_cpu["pillow"] / max(med_cpu["opencv"], 1e-6), 1),
    }


def main(argv=None) -> None:
    import cv2
    import PIL

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json", default="benchmarks/results/resize.json")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    results = {}
    for h, w in SIZES:
        r = results[f"{w}x{h}"] = run_size(h, w, args.repeats)
        print(
            f"{w}x{h} -> {r['to'][1]}x{r['to'][0]}: OpenCV {r['opencv_ms']:.3f} ms, "
            f"Pillow {r['pillow_ms']:.3f} ms, "
            f"Pillow/OpenCV {r['pillow_over_opencv']}x (CPU time {r['cpu_pillow_over_opencv']}x)"
        )
    path = write_results(
        args.json,
        "resize",
        {
            "includes": INCLUDES,
            "opencv": cv2.__version__,
            "pillow": PIL.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "repeats": args.repeats,
            "load_average_start": load,
            "load_average_end": os.getloadavg(),
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
