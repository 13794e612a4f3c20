"""Host NMS (edgedet.nms.host, numpy) vs torchvision.ops.batched_nms (CPU), same candidates, same run.

Candidates are realistic clusters: objects of varied size, each seen by many anchors whose boxes
jitter by ~5% of the object size and whose scores decay away from the best anchor; the other
anchors carry low background scores. Two measurements per case:
  nms_only   NMS on the already thresholded, top-k'd candidates (ours: edgedet.nms.host.greedy +
             gather; torchvision: batched_nms)
  full_op    threshold + top-k + per-class NMS + pad to K from the raw [N, 4] / [N, C] tensors
             (ours: edgedet.nms.host.batched_nms; torchvision: torch.where + topk + batched_nms + pad)
Usage: python benchmarks/nms_host.py [--json benchmarks/results/nms_host.json] [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import write_results
from edgedet.nms.host import batched_nms, candidates, greedy
from edgedet.nms.params import NMSParams

CASES = [(2100, 6), (8400, 80), (25200, 80)]
THRESHOLDS = (0.25, 0.001)


def make_candidates(n: int, c: int, objects: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
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
    scores[np.arange(n), cls] = np.maximum(scores[np.arange(n), cls], quality * rng.uniform(0.5, 1.0, n))
    return boxes, scores


def timed(fn, repeats: int) -> dict:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    a = np.asarray(samples) * 1e3
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90))}


def run_case(n: int, c: int, thr: float, repeats: int) -> dict:
    import torch
    import torchvision

    boxes, scores = make_candidates(n, c)
    params = NMSParams(score_threshold=thr, iou_threshold=0.45, max_output_boxes=300, top_k=1000 if thr >= 0.01 else 4096)
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)

    def tv_full():
        flat = ts.flatten()
        keep = torch.where(flat > thr)[0]
        sc = flat[keep]
        if sc.numel() > params.top_k:
            sc, i = sc.topk(params.top_k)
            keep = keep[i]
        anchor, cls = keep // c, keep % c
        k = torchvision.ops.batched_nms(tb[anchor], sc, cls, params.iou_threshold)[: params.max_output_boxes]
        out = torch.zeros(params.max_output_boxes, 4)
        out[: k.numel()] = tb[anchor[k]]
        return out

    rank_n, rank_c, rank_s = candidates(scores, params)
    cb, cs, cc = boxes[rank_n], rank_s, rank_c
    tcb, tcs, tcc = torch.from_numpy(cb), torch.from_numpy(cs), torch.from_numpy(cc)
    ours_nms = timed(lambda: cb[greedy(cb, cc, params.iou_threshold, params.max_output_boxes)], repeats)
    tv_nms = timed(lambda: tcb[torchvision.ops.batched_nms(tcb, tcs, tcc, params.iou_threshold)[: params.max_output_boxes]], repeats)
    ours_full = timed(lambda: batched_nms(boxes[None], scores[None], params), repeats)
    tv_full_t = timed(tv_full, repeats)
    kept = int(batched_nms(boxes[None], scores[None], params).num_dets[0, 0])
    return {"candidates": int(len(rank_n)), "kept": kept, "top_k": params.top_k,
            "nms_only": {"edgedet": ours_nms, "torchvision": tv_nms, "ratio_tv_over_edgedet": tv_nms["median_ms"] / ours_nms["median_ms"]},
            "full_op": {"edgedet": ours_full, "torchvision": tv_full_t, "ratio_tv_over_edgedet": tv_full_t["median_ms"] / ours_full["median_ms"]}}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/results/nms_host.json")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (numpy path is single-threaded)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    print(f"{'case':>16} {'thr':>6} {'cand':>5} {'kept':>4} | {'NMS only: ours':>14} {'tv':>7} {'tv/ours':>7} | "
          f"{'full op: ours':>13} {'tv':>7} {'tv/ours':>7}   (median ms)")
    for n, c in CASES:
        for thr in THRESHOLDS:
            r = run_case(n, c, thr, args.repeats)
            results[f"{n}x{c}@{thr}"] = r
            a, f = r["nms_only"], r["full_op"]
            print(f"{n:>10}x{c:<5} {thr:>6} {r['candidates']:>5} {r['kept']:>4} | {a['edgedet']['median_ms']:>14.3f} "
                  f"{a['torchvision']['median_ms']:>7.3f} {a['ratio_tv_over_edgedet']:>7.2f} | {f['edgedet']['median_ms']:>13.3f} "
                  f"{f['torchvision']['median_ms']:>7.3f} {f['ratio_tv_over_edgedet']:>7.2f}")
    path = write_results(args.json, "nms_host", {"torch_threads": args.threads, "repeats": args.repeats,
                                                  "includes": __doc__.split("Two measurements per case:")[1].split("Usage")[0].strip(),
                                                  "cases": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
