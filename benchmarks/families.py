"""Export time, ONNX Runtime CPU latency and INT8 speed-up for every exportable family, in one run.

For each family: export to ONNX (default --nms edgedet) at --imgsz, timing each pipeline stage and
keeping the export's own parity check (raw outputs, ONNX Runtime vs torch, max abs diff); then
`edgedet bench`-style latency (batch 1, random 640x480 frames, model weights random unless the
family ships weights) with ONNX Runtime's CPU provider; with --int8, the same latency for the
CPU-target INT8 profile (calibrated on --calib-size crops of the shared photos, speed gate off so
the ratio is reported whatever it is) in the same run; with --fp16, the FP16 graph's latency too
(ONNX Runtime's CPU provider has few FP16 kernels: this shows the cost of the casts, not a GPU's
gain). Reduced-precision rows also say how their detections on the shared photos agree with FP32's
(matched at IoU >= 0.5, same class). Figures include what
edgedet.bench.STAGE_MEANING says. Usage:

    python -m benchmarks.families --imgsz 320 --iters 20 --int8 --json
    benchmarks/results/families.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_results
from edgedet.bench import BenchConfig, bench_detector, synthetic_images

DEFAULT_FAMILIES = [
    "nano",
    "ssdlite320_mobilenet_v3_large",
    "ssd300_vgg16",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn",
    "tf_efficientdet_d0",
    "resnet18",
    "resnet50",
    "mobilenet_v3_large",
    "googlenet",
    "alexnet",
    "vgg16",
    "detr_hf",
]
PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"
# families whose anchors/heads need more
MIN_SIZE = {
    "ssd300_vgg16": 300,
    "tf_efficientdet_d0": 512,
}
# INT8 placement beyond the detection defaults: attention's softmax and layer norm stay in float
INT8_EXCLUDE = {"detr_hf": ("Softmax", "LayerNormalization")}


def latency(path: Path, iters: int, warmup: int) -> dict:
    import edgedet

    with edgedet.load(path, providers=["cpu"]) as det:
        return bench_detector(det, synthetic_images(4), BenchConfig((1,), iters, warmup))[
            "batches"
        ]["1"]


def agreement(fp32: Path, other: Path, photos: Path) -> dict:
    """Detections of ``other`` vs ``fp32`` on the shared photos: matched at IoU >= 0.5, same
    class."""
    import edgedet
    from edgedet.eval.compare import ParityAccumulator

    acc = ParityAccumulator(iou_threshold=0.5)
    files = sorted(photos.glob("*.jp*g"))
    with edgedet.load(fp32, providers=["cpu"]) as a, edgedet.load(other, providers=["cpu"]) as b:
        for f in files:
            acc.add(a(f), b(f))
    r = acc.result()
    return {
        k: r[k]
        for k in (
            "images",
            "detections_a",
            "detections_b",
            "matched_a",
            "matched_b",
            "class_agreement",
        )
        if k in r
    }


def bench_family(
    name: str,
    imgsz: int | None,
    iters: int,
    warmup: int,
    workdir: Path,
    calib: Path | None,
    fp16: bool = False,
) -> dict:
    from exporters.pipeline import ExportOptions, export
    from exporters.registry import get_model

    # classifiers at their ImageNet size (AlexNet/VGG's adaptive pooling exports only at some sizes)
    size = (
        None
        if get_model(name).family == "classifier"
        else max(imgsz or 0, MIN_SIZE.get(name, 0)) or None
    )
    t0 = time.perf_counter()
    res = export(ExportOptions(model=name, imgsz=size), workdir / f"{name}.onnx")
    export_s = time.perf_counter() - t0
    stats = latency(res.path, iters, warmup)
    out = {
        "imgsz": res.manifest.input.height,
        "export_seconds": round(export_s, 2),
        "export_stages": res.timings,
        "onnx_mb": round(res.path.stat().st_size / 1e6, 1),
        "nms": res.manifest.nms_implementation,
        # raw outputs max abs diff, or detection sets (NMS in network)
        "parity_vs_torch": res.verification,
        "inference_p50_ms": round(stats["inference"]["p50"], 2),
        "end_to_end_p50_ms": round(stats["end_to_end"]["p50"], 2),
        "stats": stats,
    }
    if fp16:
        from edgedet.onnx.quantize.api import QuantizeOptions, quantize

        half = workdir / f"{name}.fp16.onnx"
        t0 = time.perf_counter()
        quantize(res.path, half, QuantizeOptions(mode="fp16"))
        h = latency(half, iters, warmup)
        out["fp16_cpu"] = {
            "quantize_seconds": round(time.perf_counter() - t0, 1),
            "inference_p50_ms": round(h["inference"]["p50"], 2),
            "speedup_vs_fp32": round(stats["inference"]["p50"] / h["inference"]["p50"], 2),
            "vs_fp32_on_photos": agreement(res.path, half, PHOTOS) if PHOTOS.is_dir() else None,
        }
    if calib is not None:
        from edgedet.onnx.quantize.api import QuantizeOptions, quantize

        int8 = workdir / f"{name}.int8-cpu.onnx"
        t0 = time.perf_counter()
        quantize(
            res.path,
            int8,
            QuantizeOptions(
                mode="int8",
                calib_dir=str(calib),
                target="cpu",
                speed_check=False,
                cache_dir=str(workdir / "cache"),
                exclude=INT8_EXCLUDE.get(name, ()),
            ),
        )
        q = latency(int8, iters, warmup)
        out["int8_cpu"] = {
            "quantize_seconds": round(time.perf_counter() - t0, 1),
            "inference_p50_ms": round(q["inference"]["p50"], 2),
            "speedup_vs_fp32": round(stats["inference"]["p50"] / q["inference"]["p50"], 2),
            "vs_fp32_on_photos": agreement(res.path, int8, PHOTOS) if PHOTOS.is_dir() else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", default=DEFAULT_FAMILIES)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--int8", action="store_true", help="also quantise (CPU INT8 profile) and time it"
    )
    ap.add_argument(
        "--fp16", action="store_true", help="also convert to FP16 and time it (ORT CPU)"
    )
    ap.add_argument("--calib-size", type=int, default=32)
    ap.add_argument("--photos", default=str(PHOTOS))
    ap.add_argument("--json", default="benchmarks/results/families.json")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        calib = None
        if args.int8:
            from benchmarks.common import photo_crops
            from edgedet.preprocess import read_image

            photos = [read_image(p) for p in sorted(Path(args.photos).glob("*.jp*g"))]
            calib = photo_crops(
                photos,
                Path(tmp) / "calib",
                per_image=max(1, args.calib_size // max(1, len(photos))),
            )
        for name in args.families:
            try:
                r = bench_family(
                    name, args.imgsz, args.iters, args.warmup, Path(tmp), calib, args.fp16
                )
            except Exception as exc:  # record the failure, go on with the other families
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"{name:38s} FAILED: {results[name]['error']}", flush=True)
                continue
            results[name] = r
            q = f"   INT8-cpu x{r['int8_cpu']['speedup_vs_fp32']:.2f}" if "int8_cpu" in r else ""
            q += f"   FP16-cpu x{r['fp16_cpu']['speedup_vs_fp32']:.2f}" if "fp16_cpu" in r else ""
            print(
                f"{name:38s} export {r['export_seconds']:6.1f} s   ORT CPU inference p50"
                f" {r['inference_p50_ms']:8.2f} ms   end-to-end p50 {r['end_to_end_p50_ms']:8.2f}"
                f" ms{q}   ({r['imgsz']}px, {r['onnx_mb']} MB)",
                flush=True,
            )
    path = write_results(
        args.json,
        "families",
        {
            "imgsz": args.imgsz,
            "iters": args.iters,
            "includes": (
                "export: build+torch export+verify+NMS+slim+check+write; "
                "latency: batch 1, ORT CPU provider, NMS in graph "
                "(--nms edgedet's function body); int8_cpu: CPU-target "
                "INT8 profile, speed-up = FP32 p50 / INT8 p50, same run; "
                "fp16_cpu: FP16 graph on the CPU provider; detr_hf: "
                "end-to-end head (threshold + top-k, no NMS), INT8 with "
                "Softmax/LayerNormalization kept in float"
            ),
            "families": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
