"""Export time and ONNX Runtime CPU latency for every exportable family, in one run.

For each family: export to ONNX (NMS in graph) at --imgsz, timing each pipeline stage; then
`edgedet bench`-style latency (batch 1, random 640x480 frames, model weights random unless
the family ships weights) with ONNX Runtime's CPU provider. Figures include what
edgedet.bench.STAGE_MEANING says. Usage:

    python benchmarks/families.py --imgsz 320 --iters 20 --json benchmarks/results/families.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_results
from edgedet.bench import BenchConfig, bench_detector, synthetic_images

DEFAULT_FAMILIES = ["nano", "ssdlite320_mobilenet_v3_large", "ssd300_vgg16", "retinanet_resnet50_fpn",
                    "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn"]


def bench_family(name: str, imgsz: int | None, iters: int, warmup: int, workdir: Path) -> dict:
    import edgedet
    from exporters.pipeline import ExportOptions, export

    size = imgsz if name != "ssd300_vgg16" else max(imgsz or 300, 300)
    t0 = time.perf_counter()
    res = export(ExportOptions(model=name, imgsz=size, nms="graph"), workdir / f"{name}.onnx")
    export_s = time.perf_counter() - t0
    with edgedet.load(res.path, providers=["cpu"]) as det:
        stats = bench_detector(det, synthetic_images(4), BenchConfig((1,), iters, warmup))["batches"]["1"]
    return {"imgsz": size, "export_seconds": round(export_s, 2), "export_stages": res.timings,
            "onnx_mb": round(res.path.stat().st_size / 1e6, 1),
            "inference_p50_ms": round(stats["inference"]["p50"], 2),
            "end_to_end_p50_ms": round(stats["end_to_end"]["p50"], 2), "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", default=DEFAULT_FAMILIES)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", default="benchmarks/results/families.json")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            r = bench_family(name, args.imgsz, args.iters, args.warmup, Path(tmp))
            results[name] = r
            print(f"{name:32s} export {r['export_seconds']:6.1f} s   ORT CPU inference p50 {r['inference_p50_ms']:8.2f} ms"
                  f"   end-to-end p50 {r['end_to_end_p50_ms']:8.2f} ms   ({r['imgsz']}px, {r['onnx_mb']} MB)")
    path = write_results(args.json, "families", {"imgsz": args.imgsz, "iters": args.iters,
                                                  "includes": "export: build+torch export+verify+NMS+slim+check+write; "
                                                              "latency: batch 1, ORT CPU provider, NMS in graph",
                                                  "families": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
