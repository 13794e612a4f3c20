"""CUDA NMS kernels (edgedet/csrc/nms_kernels.cu) vs torchvision.ops.batched_nms on CUDA, same data,
same run.

Data: benchmarks.nms_host.make_candidates (30 clustered objects with jittered anchors, low
background scores elsewhere, seeded), batch 1, already-activated scores, iou_threshold 0.45, K =
300, top_k 1000 at score threshold 0.25 and 4096 at 0.001 (plus 10000 at 25200 x 80 @ 0.001). Inputs
and outputs stay on the GPU; each timed region is bracketed by CUDA events on the legacy default
stream (CuPy's and torch's default stream) and followed by a synchronize; medians of --repeats after
--warmup calls.
  edgedet      one edgedet_nms call through ctypes, arguments prebuilt: threshold + top-k ranking of
               all N*C scores + box gather + per-class bitmask NMS + padded outputs (num_dets,
               det_boxes, det_scores, det_classes, det_indices); workspace and outputs preallocated,
               parameters already built
  torchvision  the same operation in torch: flatten, torch.where(score > thr) (a device->host sync),
               topk when more than top_k survive, gather boxes, torchvision.ops.batched_nms
               (per-class), first K, padded outputs (num_dets, boxes, scores, classes)
Agreement: the kept (anchor, class) sets of both, and our outputs vs the host path (bit-exact
expected). Needs a GPU, nvcc and CuPy; torch + torchvision are optional (without them only our side
is timed). Usage: python -m benchmarks.gpu.nms_cuda
--json OUT/nms_cuda.json [--repeats 100] [--dry-run]
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import write_results
from benchmarks.gpu.nms_kernels import bind, c_params, prepare_nms_cuda, workspace_size
from benchmarks.nms_host import make_candidates
from edgedet.nms import NMSParams, batched_nms

CASES = [
    (8400, 80, 0.25, 1000),
    (8400, 80, 0.001, 4096),
    (25200, 80, 0.25, 1000),
    (25200, 80, 0.001, 4096),
    (25200, 80, 0.001, 10000),
]
K, IOU = 300, 0.45
INCLUDES = (
    __doc__.split("followed by a synchronize; medians of --repeats after --warmup calls.")[1]
    .split("Agreement")[0]
    .rstrip()
)


def case_data(n: int, c: int, thr: float, top_k: int) -> tuple[np.ndarray, np.ndarray, NMSParams]:
    """boxes [1, N, 4], scores [1, N, C] float32 and the parameters of one case."""
    boxes, scores = make_candidates(n, c)
    return (
        boxes[None],
        scores[None],
        NMSParams(score_threshold=thr, iou_threshold=IOU, max_output_boxes=K, top_k=top_k),
    )


def load_torchvision():
    """(torch, torchvision) or the reason they cannot be used here."""
    try:
        import torch
        import torchvision
    except ImportError as exc:
        return None, f"not installed ({exc})"
    if not torch.cuda.is_available():
        return None, "torch has no CUDA here"
    return (torch, torchvision), None


def time_events(fn, warmup: int, repeats: int) -> dict:
    """Median / p90 / min ms of ``fn`` between CUDA events on the default stream, synchronising each
    call."""
    import cupy as cp

    start, end = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for i in range(warmup + repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        if i >= warmup:
            times.append(cp.cuda.get_elapsed_time(start, end))
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "min_ms": float(np.min(times)),
    }


def torch_full_op(torch, torchvision, boxes, scores, p: NMSParams):
    """The torchvision side's timed region (see the module docstring); boxes [N, 4], scores [N, C]
    on CUDA."""
    c, k = scores.shape[1], p.max_output_boxes
    flat = scores.flatten()
    keep = torch.where(flat > p.score_threshold)[0]
    sc = flat[keep]
    if p.top_k and sc.numel() > p.top_k:
        sc, i = sc.topk(p.top_k)
        keep = keep[i]
    anchor, cls = keep // c, keep % c
    kept = torchvision.ops.batched_nms(boxes[anchor], sc, cls, p.iou_threshold)[:k]
    num = kept.numel()
    out_boxes, out_scores = (
        torch.zeros(k, 4, device=boxes.device),
        torch.zeros(k, device=boxes.device),
    )
    out_classes = torch.zeros(k, dtype=torch.int32, device=boxes.device)
    out_boxes[:num], out_scores[:num], out_classes[:num] = (
        boxes[anchor[kept]],
        sc[kept],
        cls[kept].int(),
    )
    return (
        torch.tensor([num], dtype=torch.int32, device=boxes.device),
        out_boxes,
        out_scores,
        out_classes,
        anchor[kept],
    )


def run_case(lib, n, c, thr, top_k, warmup, repeats, tv) -> dict:
    import cupy as cp

    boxes, scores, p = case_data(n, c, thr, top_k)
    d_boxes, d_scores = cp.asarray(boxes), cp.asarray(scores)
    workspace = cp.empty(workspace_size(lib, c_params(p, 1, n, c)), cp.uint8)
    # outputs allocated once, args built once
    call = prepare_nms_cuda(lib, d_boxes, d_scores, p, workspace=workspace)
    ours = time_events(call, warmup, repeats)
    got = [cp.asnumpy(o) for o in call()]
    host = batched_nms(boxes, scores, p)
    num = int(got[0][0, 0])
    ours_kept = set(zip(got[4][0, :num].tolist(), got[3][0, :num].tolist()))
    r = {
        "n": n,
        "c": c,
        "score_threshold": thr,
        "top_k": top_k,
        "k": K,
        "workspace_bytes": int(workspace.nbytes),
        "candidates": int(min(top_k, np.count_nonzero(scores > np.float32(thr)))),
        "kept": num,
        "edgedet": ours,
        "equal_to_host_path": all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, host)),
    }
    if tv is not None:
        torch, torchvision = tv
        t_boxes, t_scores = (
            torch.as_tensor(d_boxes[0], device="cuda"),
            torch.as_tensor(d_scores[0], device="cuda"),
        )
        theirs = time_events(
            lambda: torch_full_op(torch, torchvision, t_boxes, t_scores, p), warmup, repeats
        )
        t_num, _, _, t_cls, t_anchor = torch_full_op(torch, torchvision, t_boxes, t_scores, p)
        tv_kept = set(zip(t_anchor.tolist(), t_cls.tolist()))
        r.update(
            torchvision=theirs,
            ratio_tv_over_edgedet=theirs["median_ms"] / ours["median_ms"],
            same_kept_set_as_torchvision=ours_kept == tv_kept,
            kept_torchvision=int(t_num.item()),
        )
    return r


def dry_run(lib) -> None:
    """No GPU: the cases, their candidate counts and workspace sizes (host-side query)."""
    for n, c, thr, top_k in CASES:
        boxes, scores, p = case_data(n, c, thr, top_k)
        print(
            f"{n}x{c}@{thr} top_k {top_k}: {np.count_nonzero(scores > np.float32(thr))} above"
            f" threshold, host path keeps {int(batched_nms(boxes, scores, p).num_dets[0, 0])},"
            f" workspace {workspace_size(lib, c_params(p, 1, n, c)) / 2**20:.1f} MiB"
        )


def main() -> None:
    from edgedet.cuda_build import compile_library
    from edgedet.doctor import gpu_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/results/nms_cuda.json")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="no GPU needed: build, generate the cases, print sizes",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib = bind(ctypes.CDLL(str(compile_library(Path(tmp) / "libedgedet_kernels.so"))))
        if args.dry_run:
            return dry_run(lib)
        tv, why = load_torchvision()
        gpu = (gpu_info() or [{}])[0]
        print(f"GPU: {gpu.get('name', '?')}; torchvision: {why or tv[1].__version__}\n{INCLUDES}\n")
        results = {}
        for n, c, thr, top_k in CASES:
            r = results[f"{n}x{c}@{thr}/top_k={top_k}"] = run_case(
                lib, n, c, thr, top_k, args.warmup, args.repeats, tv
            )
            line = (
                f"{n:>6}x{c:<3} @ {thr:<5} top_k {top_k:>5}: {r['candidates']:>5} cand,"
                f" {r['kept']:>3} kept | edgedet {r['edgedet']['median_ms']:.3f} ms (p90"
                f" {r['edgedet']['p90_ms']:.3f}), = host path: {r['equal_to_host_path']}"
            )
            if tv is not None:
                line += (
                    f" | torchvision {r['torchvision']['median_ms']:.3f} ms, tv/ours"
                    f" {r['ratio_tv_over_edgedet']:.2f}, same kept set:"
                    f" {r['same_kept_set_as_torchvision']}"
                )
            print(line)
    extra = {
        "gpu": gpu,
        "torchvision": why or tv[1].__version__,
        "torch": None if tv is None else tv[0].__version__,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "includes": INCLUDES,
        "cases": results,
    }
    print(f"wrote {write_results(args.json, 'nms_cuda', extra)}")


if __name__ == "__main__":
    main()
