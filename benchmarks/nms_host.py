"""Host NMS (edgedet.nms.host, numpy) vs torchvision.ops.batched_nms (CPU), same candidates, same
run.

Candidates are realistic clusters: 30 objects of varied size, each seen by many anchors whose boxes
jitter by ~5% of the object size and whose scores decay away from the best anchor; the other
(anchor, class) scores are low background. Two measurements per case, K = 300:
  nms_only   NMS on the already thresholded, top-k'd candidates in rank order (ours:
             edgedet.nms.host.greedy + gathering the kept boxes; torchvision: batched_nms + the same
             gather)
  full_op    threshold + top-k + per-class NMS + padding to K from the raw [N, 4] / [N, C] arrays
             (ours: edgedet.nms.host.batched_nms; torch: torch.where + topk + batched_nms + pad)
Both sides run single-threaded (numpy is; torch.set_num_threads(1)), alternating call by call so
background load hits both alike. Reported: wall-clock median / p90 ms, torchvision / ours of the
wall-clock medians, and (cpu) of the per-call thread CPU-time medians.
Usage: python -m benchmarks.nms_host [--json benchmarks/results/nms_host.json] [--repeats 40]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.common import write_results
from edgedet.nms.host import batched_nms, candidates, greedy
from edgedet.nms.params import NMSParams

CASES = [(2100, 6), (8400, 80), (25200, 80)]
THRESHOLDS = (0.25, 0.001)
INCLUDES = __doc__.split("Two measurements per case, K = 300:")[1].split("Usage")[0].strip()


def make_candidates(
    n: int, c: int, objects: int = 30, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """boxes [N, 4] xyxy in a 640x640 image, scores [N, C] in 0..1."""
    rng = np.random.default_rng(seed)
    centre = rng.random((objects, 2)) * 560 + 40
    size = np.exp(rng.uniform(np.log(16), np.log(300), (objects, 2)))
    owner = rng.integers(0, objects, n)
    jitter = rng.normal(0, 0.05, (n, 4))
    cxy = centre[owner] + jitter[:, :2] * size[owner]
    wh = size[owner] * np.exp(jitter[:, 2:])
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], 1).astype(np.float32)
    scores = (rng.random((n, c)) ** 6 * 0.2).astype(np.float32)  # background
    quality = np.exp(-np.abs(jitter).sum(1) * 12)  # well-placed anchors score high
    cls = rng.integers(0, c, objects)[owner]
    scores[np.arange(n), cls] = np.maximum(
        scores[np.arange(n), cls], quality * rng.uniform(0.5, 1.0, n)
    )
    return boxes, scores


def timed_pair(ours, theirs, repeats: int) -> tuple[dict, dict]:
    """Alternate the two callables; per side wall-clock median / p90 / min and the median of the
    thread's CPU time (unaffected by time spent descheduled on a loaded machine), in ms."""
    ours(), theirs()
    wall, cpu = ([], []), ([], [])
    for _ in range(repeats):
        for i, fn in enumerate((ours, theirs)):
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            cpu[i].append(time.thread_time() - c0)
            wall[i].append(time.perf_counter() - t0)
    return tuple(
        {
            "median_ms": float(np.median(w) * 1e3),
            "p90_ms": float(np.percentile(w, 90) * 1e3),
            "min_ms": float(np.min(w) * 1e3),
            "cpu_median_ms": float(np.median(c) * 1e3),
        }
        for w, c in zip(wall, cpu)
    )


def run_case(n: int, c: int, thr: float, repeats: int) -> dict:
    import torch
    import torchvision

    boxes, scores = make_candidates(n, c)
    k = 300
    params = NMSParams(
        score_threshold=thr,
        iou_threshold=0.45,
        max_output_boxes=k,
        top_k=1000 if thr >= 0.01 else 4096,
    )
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)

    def torch_full():
        flat = ts.flatten()
        keep = torch.where(flat > thr)[0]
        sc = flat[keep]
        if sc.numel() > params.top_k:
            sc, i = sc.topk(params.top_k)
            keep = keep[i]
        anchor, cls = keep // c, keep % c
        kept = torchvision.ops.batched_nms(tb[anchor], sc, cls, params.iou_threshold)[:k]
        out = torch.zeros(k, 4)
        out[: kept.numel()] = tb[anchor[kept]]
        return out

    rank_n, rank_c, rank_s = candidates(scores, params)
    cb = boxes[rank_n]
    tcb, tcs, tcc = torch.from_numpy(cb), torch.from_numpy(rank_s), torch.from_numpy(rank_c)
    ours_nms, tv_nms = timed_pair(
        lambda: cb[greedy(cb, rank_c, params.iou_threshold, k)],
        lambda: tcb[torchvision.ops.batched_nms(tcb, tcs, tcc, params.iou_threshold)[:k]],
        repeats,
    )
    ours_full, tv_full = timed_pair(
        lambda: batched_nms(boxes[None], scores[None], params), torch_full, repeats
    )
    # without the K cut: torchvision orders equal scores arbitrarily
    ours_keep = greedy(cb, rank_c, params.iou_threshold)
    tv_keep = torchvision.ops.batched_nms(tcb, tcs, tcc, params.iou_threshold).numpy()
    return {
        "candidates": int(len(rank_n)),
        "kept": min(k, len(ours_keep)),
        "top_k": params.top_k,
        "same_kept_set_as_torchvision": bool(np.array_equal(np.sort(ours_keep), np.sort(tv_keep))),
        "same_order_as_torchvision": bool(np.array_equal(ours_keep, tv_keep)),
        "nms_only": _compare(ours_nms, tv_nms),
        "full_op": _compare(ours_full, tv_full),
    }


def _compare(ours: dict, tv: dict) -> dict:
    return {
        "edgedet": ours,
        "torchvision": tv,
        "ratio_tv_over_edgedet": tv["median_ms"] / ours["median_ms"],
        "cpu_ratio_tv_over_edgedet": tv["cpu_median_ms"] / ours["cpu_median_ms"],
    }


def main() -> None:
    import torch

    from edgedet.bench import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/results/nms_host.json")
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(1)
    machine = machine_info()
    load = os.getloadavg()
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, load average {load[0]:.1f} at start;"
        f" torch {torch.__version__}, 1 thread each side\n{INCLUDES}\n"
    )
    print(
        f"{'case':>14} {'thr':>6} {'cand':>5} {'kept':>4} | {'NMS only ours':>13} {'(p90)':>7}"
        f" {'tv':>7} {'(p90)':>7} {'tv/ours':>7} {'(cpu)':>5} | {'full op ours':>12} {'(p90)':>7}"
        f" {'tv':>7} {'(p90)':>7} {'tv/ours':>7} {'(cpu)':>5}   (median ms)"
    )
    results = {}
    for n, c in CASES:
        for thr in THRESHOLDS:
            r = run_case(n, c, thr, args.repeats)
            results[f"{n}x{c}@{thr}"] = r
            a, f = r["nms_only"], r["full_op"]
            print(
                f"{n:>8}x{c:<5} {thr:>6} {r['candidates']:>5} {r['kept']:>4} |"
                f" {a['edgedet']['median_ms']:>13.3f} {a['edgedet']['p90_ms']:>7.3f}"
                f" {a['torchvision']['median_ms']:>7.3f} {a['torchvision']['p90_ms']:>7.3f}"
                f" {a['ratio_tv_over_edgedet']:>7.2f} {a['cpu_ratio_tv_over_edgedet']:>5.2f} |"
                f" {f['edgedet']['median_ms']:>12.3f} {f['edgedet']['p90_ms']:>7.3f}"
                f" {f['torchvision']['median_ms']:>7.3f} {f['torchvision']['p90_ms']:>7.3f}"
                f" {f['ratio_tv_over_edgedet']:>7.2f} {f['cpu_ratio_tv_over_edgedet']:>5.2f}"
            )
    path = write_results(
        args.json,
        "nms_host",
        {
            "torch": torch.__version__,
            "torch_threads": 1,
            "repeats": args.repeats,
            "load_average_start": load,
            "load_average_end": os.getloadavg(),
            "includes": INCLUDES,
            "cases": results,
        },
    )
    print(f"load average at end {os.getloadavg()[0]:.1f}; wrote {path}")


if __name__ == "__main__":
    main()
