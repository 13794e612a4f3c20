"""GPU letterbox kernel (benchmarks/gpu/letterbox.cu) vs the CPU path (OpenCV resize + NCHW float),
same run.

CPU: edgedet.preprocess.letterbox + to_input on a decoded frame (what the runtime does per image).
GPU: the uint8 frame copied host->device (pageable memory) + one kernel writing NCHW float32, timed
with CUDA events; "kernel" excludes the copy. Needs a GPU, nvcc and CuPy (the device machine).
Usage: python -m benchmarks.gpu.letterbox --json OUT/letterbox.json
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_results
from edgedet.cuda_build import compile_library
from edgedet.preprocess import letterbox, to_input

SIZES = [(480, 640), (720, 1280), (1080, 1920)]
SOURCE = Path(__file__).with_name("letterbox.cu")


class Params(ctypes.Structure):
    """Mirror of the C struct EdgedetLetterbox in letterbox.cu (field order and types are the
    ABI)."""

    _fields_ = [
        (n, ctypes.c_int)
        for n in (
            "src_h",
            "src_w",
            "src_pitch",
            "dst_h",
            "dst_w",
            "new_h",
            "new_w",
            "pad_x",
            "pad_y",
        )
    ] + [("pad_value", ctypes.c_float), ("out_uint8", ctypes.c_int)]


def run(lib, shape, size: int, iters: int) -> dict:
    import cupy as cp

    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    t = []
    for _ in range(iters):
        t0 = time.perf_counter()
        canvas, info = letterbox(img, size, size)
        to_input([canvas])
        t.append(time.perf_counter() - t0)
    cpu_ms = float(np.median(t) * 1e3)
    new_w, new_h = round(shape[1] * info.scale), round(shape[0] * info.scale)
    p = Params(
        shape[0],
        shape[1],
        shape[1] * 3,
        size,
        size,
        new_h,
        new_w,
        int(info.pad_x),
        int(info.pad_y),
        114.0,
        0,
    )
    dst = cp.zeros((1, 3, size, size), cp.float32)
    src = cp.empty(img.shape, cp.uint8)
    start, mid, end = cp.cuda.Event(), cp.cuda.Event(), cp.cuda.Event()
    total, kernel = [], []
    for i in range(iters + 5):
        start.record()
        src.set(img)
        mid.record()
        rc = lib.edgedet_letterbox(
            ctypes.c_void_p(src.data.ptr), ctypes.c_void_p(dst.data.ptr), 1, p, ctypes.c_void_p(0)
        )
        end.record()
        end.synchronize()
        assert rc == 0
        if i >= 5:
            total.append(cp.cuda.get_elapsed_time(start, end))
            kernel.append(cp.cuda.get_elapsed_time(mid, end))
    ref = to_input([letterbox(img, size, size)[0]])
    diff = float(np.abs(cp.asnumpy(dst) - ref).max() * 255)
    return {
        "cpu_ms": cpu_ms,
        "gpu_copy_plus_kernel_ms": float(np.median(total)),
        "gpu_kernel_ms": float(np.median(kernel)),
        "speedup_copy_plus_kernel": cpu_ms / float(np.median(total)),
        "max_abs_diff_255": diff,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/results/gpu_letterbox.json")
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib = ctypes.CDLL(
            str(compile_library(Path(tmp) / "libedgedet_letterbox.so", sources=[SOURCE]))
        )
        results = {f"{h}x{w}": run(lib, (h, w), args.size, args.iters) for h, w in SIZES}
    for k, r in results.items():
        print(
            f"{k:>10} -> {args.size}: CPU {r['cpu_ms']:.3f} ms, GPU copy+kernel"
            f" {r['gpu_copy_plus_kernel_ms']:.3f} ms (kernel {r['gpu_kernel_ms']:.3f}),"
            f" x{r['speedup_copy_plus_kernel']:.1f}, max diff {r['max_abs_diff_255']:.2f}/255"
        )
    print(
        "wrote"
        f" {write_results(args.json, 'gpu_letterbox', {'size': args.size, 'results': results})}"
    )


if __name__ == "__main__":
    main()
