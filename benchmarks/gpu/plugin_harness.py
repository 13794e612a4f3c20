"""The EdgeDetNMS plugin's host logic on the real CUDA kernels, every input combination, against the
oracle.

tests/edgedet/trt/plugin_harness.cpp plays TensorRT's part (creator, fields as the ONNX parser
passes them, configurePlugin, workspace from getWorkspaceSize, serialisation round trip,
onShapeChange, enqueue on a non-blocking stream with an unaligned workspace and garbage-filled
outputs). Built with -DEDGEDET_REAL_KERNELS it links edgedet/csrc/nms_kernels.cu and runs, on the
GPU, anchors yes/no x run-time threshold inputs yes/no x boxes [B,N,4] / [B,N,C,4] (B=2, N=300, C=4,
K=20, top_k 100), writing inputs and outputs; this script compares each output with
edgedet.nms.reference_nms on the same inputs (num_dets and det_classes exactly, det_boxes /
det_scores to float32 rounding of the decode). It is a correctness check, not a timing. TensorRT's
libraries are not needed, its C++ headers are (found as `edgedet plugin build` finds them:
$TENSORRT_ROOT/include, system folders, or --tensorrt-include).
Usage: python -m benchmarks.gpu.plugin_harness --json OUT/plugin_harness.json
         [--tensorrt-include DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import write_results
from edgedet.cuda_build import nvcc_command
from edgedet.errors import EdgeDetError
from edgedet.nms import NMSParams, reference_nms
from edgedet.trt import plugin_build as pb

HARNESS = Path(__file__).resolve().parents[2] / "tests" / "edgedet" / "trt" / "plugin_harness.cpp"


def compile_command(
    include: Path, exe: Path, arch: list[str] | None = None, real_kernels: bool = True
) -> list[str]:
    """nvcc command for the harness: real kernels (GPU run) or stub kernels (CPU, what the tests
    run)."""
    sources = [HARNESS, pb.CSRC / pb.SOURCES[1]] + (
        [pb.CSRC / pb.SOURCES[0]] if real_kernels else []
    )
    return nvcc_command(
        pb.nvcc_for(),
        sources,
        exe,
        arch or [],
        [include, pb.CSRC],
        shared=False,
        optimize="-O2",
        host_flags=("-Wno-deprecated-declarations",),
        defines=["EDGEDET_REAL_KERNELS"] if real_kernels else [],
    )


def read_case(folder: Path, line: str) -> dict:
    """One CASE line of the harness and the arrays it wrote."""
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    name = line.split()[1]
    b, n, c, k = (int(fields[x]) for x in ("B", "N", "C", "K"))
    per_class, anchors, thresholds = (
        fields[x] == "1" for x in ("per_class", "anchors", "thresholds")
    )

    def load(suffix, dtype, shape):
        return np.fromfile(folder / f"{name}.{suffix}", dtype).reshape(shape)

    case = {
        "name": name,
        "per_class": per_class,
        "anchors": anchors,
        "thresholds": thresholds,
        "boxes": load("boxes.f32", np.float32, (b, n, c, 4) if per_class else (b, n, 4)),
        "scores": load("scores.f32", np.float32, (b, n, c)),
        "anchors_array": load("anchors.f32", np.float32, (1, n, 4)) if anchors else None,
        "got": {
            "num_dets": load("num_dets.i32", np.int32, (b, 1)),
            "det_boxes": load("det_boxes.f32", np.float32, (b, k, 4)),
            "det_scores": load("det_scores.f32", np.float32, (b, k)),
            "det_classes": load("det_classes.i32", np.int32, (b, k)),
        },
    }
    st, it = (
        load("thresholds.f32", np.float32, (2,))
        if thresholds
        else (float(fields["score_threshold"]), float(fields["iou_threshold"]))
    )
    case["params"] = NMSParams(
        score_threshold=float(st),
        iou_threshold=float(it),
        max_output_boxes=k,
        top_k=int(fields["top_k"]),
        box_coding=int(fields["box_coding"]),
        box_scale=(10.0, 10.0, 5.0, 5.0),
    )
    return case


def compare(case: dict) -> dict:
    """The harness's outputs vs reference_nms; a case with no detection proves nothing and fails."""
    want = reference_nms(case["boxes"], case["scores"], case["params"], case["anchors_array"])
    got = case["got"]
    result = {
        "case": case["name"],
        "detections": int(want.num_dets.sum()),
        "num_dets_equal": bool(np.array_equal(got["num_dets"], want.num_dets)),
        "classes_equal": bool(np.array_equal(got["det_classes"], want.det_classes)),
        "scores_max_abs_diff": float(np.abs(got["det_scores"] - want.det_scores).max()),
        "boxes_max_abs_diff": float(np.abs(got["det_boxes"] - want.det_boxes).max()),
    }
    result["ok"] = (
        result["detections"] > 0
        and result["num_dets_equal"]
        and result["classes_equal"]
        and np.allclose(got["det_scores"], want.det_scores, rtol=1e-6, atol=1e-6)
        and np.allclose(got["det_boxes"], want.det_boxes, rtol=1e-5, atol=1e-4)
    )
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument(
        "--tensorrt-include",
        help="folder with NvInfer.h (default: as `edgedet plugin build` finds it)",
    )
    args = ap.parse_args(argv)
    try:
        headers = pb.find_headers(args.tensorrt_include)
    except EdgeDetError as exc:
        reason = f"not run: no TensorRT C++ headers on this machine ({str(exc).split(';')[0]})"
        print(reason)
        write_results(args.json, "plugin_harness", {"ran": False, "reason": reason})
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exe = tmp / "plugin_harness"
        built = subprocess.run(
            compile_command(headers.include, exe, ["-arch=native"]), capture_output=True, text=True
        )
        if built.returncode != 0:
            print(built.stderr[-3000:])
            write_results(
                args.json,
                "plugin_harness",
                {"ran": False, "reason": "nvcc failed", "stderr": built.stderr[-3000:]},
            )
            return 1
        ran = subprocess.run([str(exe), str(tmp)], capture_output=True, text=True, timeout=300)
        print(ran.stdout[-4000:], ran.stderr[-2000:])
        cases = [
            compare(read_case(tmp, line))
            for line in ran.stdout.splitlines()
            if line.startswith("CASE ")
        ]
    ok = (
        ran.returncode == 0
        and ran.stdout.strip().endswith("OK")
        and len(cases) == 8
        and all(c["ok"] for c in cases)
    )
    for c in cases:
        print(
            f"{c['case']:40s} detections {c['detections']:3d}  ok {c['ok']}  max |d score|"
            f" {c['scores_max_abs_diff']:.2e}  max |d box| {c['boxes_max_abs_diff']:.2e}"
        )
    write_results(
        args.json,
        "plugin_harness",
        {
            "ran": True,
            "ok": ok,
            "tensorrt_headers": str(headers.version),
            "harness_exit": ran.returncode,
            "includes": (
                "plugin host logic (creator, fields, configurePlugin, getWorkspaceSize,"
                " serialisation, onShapeChange, enqueue) + the real CUDA kernels; no TensorRT"
                " library, no timing"
            ),
            "cases": cases,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
