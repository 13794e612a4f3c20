"""FP32 vs FP16 vs INT8 (TensorRT Q/DQ layout, and the CPU recipe) in ONNX Runtime on this CPU, same
run.

Per family: export FP32 (NMS in graph), quantise, then
  latency   ORT CPU provider, batch 1, inference p50 (model + in-graph NMS), images already
  letterboxed accuracy  nano: COCO mAP on its synthetic validation set; SSDlite / RetinaNet:
  detection agreement
            with FP32 on real photos (matched fraction at IoU 0.5, score delta, raw-tensor stats)
torchvision weights cannot be downloaded here: SSDlite and RetinaNet are randomly initialised, then
made to behave like trained models (BatchNorm statistics re-estimated on the photos, class logits
rescaled); their agreement numbers measure numerical fidelity, not COCO accuracy.
Usage: python -m benchmarks.precision [--families nano ssdlite320_mobilenet_v3_large
retinanet_resnet50_fpn]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

from benchmarks.common import photo_crops, realistic_random_model, write_results

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def load_photos(folder: Path):
    from edgedet.preprocess import list_images, read_image

    return [read_image(p) for p in list_images(folder)]


def build_family(name: str, photos, imgsz: int | None):
    import torch

    from exporters.pipeline import ExportOptions, build_exportable

    torch.manual_seed(0)
    em = build_exportable(ExportOptions(model=name, imgsz=imgsz))
    if name != "nano":
        realistic_random_model(em, photos, em.module.model.head.classification_head)
    return em


def make_variants(em, name: str, work: Path, calib_dir: Path) -> dict[str, Path]:
    from edgedet.onnx.quantize.api import QuantizeOptions, quantize
    from exporters.pipeline import ExportOptions, export

    fp32 = work / f"{name}.onnx"
    # random torchvision heads score below their families' 0.05 NMS threshold: keep low-scoring
    # boxes in the graph and let agreement() pick its threshold from the FP32 scores
    low = (
        {}
        if name == "nano"
        else {"nms_overrides": {"score_threshold": 0.001, "max_output_boxes": 300}}
    )
    export(ExportOptions(model=name, imgsz=em.imgsz[0], **low), fp32, model=em)
    paths = {"fp32": fp32}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for variant, opts in (
            ("fp16", QuantizeOptions(mode="fp16")),
            (
                "int8",
                QuantizeOptions(
                    mode="int8", calib_dir=str(calib_dir), cache_dir=str(work / "cache")
                ),
            ),
            (
                "int8-cpu",
                QuantizeOptions(
                    mode="int8",
                    calib_dir=str(calib_dir),
                    target="cpu",
                    cache_dir=str(work / "cache"),
                    speed_check=False,
                ),
            ),
        ):
            paths[variant] = work / f"{name}.{variant}.onnx"
            quantize(fp32, paths[variant], opts)
    return paths


def latency(path: Path, images, iters: int) -> dict:
    import edgedet
    from edgedet.bench import BenchConfig, bench_detector

    with edgedet.load(path, providers=["cpu"]) as det:
        stats = bench_detector(det, images, BenchConfig((1,), iters, 5))["batches"]["1"]
    return {
        "inference_p50_ms": stats["inference"]["p50"],
        "end_to_end_p50_ms": stats["end_to_end"]["p50"],
    }


def agreement(ref: Path, other: Path, images, per_image: int = 10) -> dict:
    """Detection agreement at a score threshold that keeps about ``per_image`` FP32 detections per
    photo
    (random heads have no meaningful absolute score scale)."""
    import numpy as np

    import edgedet
    from edgedet.eval.compare import compare_detectors
    from edgedet.onnx.raw_tap import raw_tap

    with edgedet.load(ref) as a, edgedet.load(other) as b:
        tops = [np.sort(d.scores)[::-1] for d in a.predict(images)]
        min_score = float(
            np.median([t[min(per_image, len(t)) - 1] if len(t) else 1.0 for t in tops])
        )
        ta, tb = raw_tap(a, ref), raw_tap(b, other)
        return compare_detectors(
            a,
            b,
            images,
            0.5,
            min_score,
            lambda img: {k: (ta(img)[k], tb(img)[k]) for k in ("boxes", "scores")},
        )


def nano_map(path: Path, dataset) -> dict:
    import edgedet
    from edgedet.eval.runner import evaluate

    with edgedet.load(path) as det:
        s = evaluate(det, dataset)
    return {"mAP": s["mAP"], "mAP50": s["mAP50"]}


def run_family(name: str, args, photos, work: Path) -> dict:
    if name == "nano":
        from edgedet.eval.datasets import load_dataset
        from exporters.demo import CALIB_SEED
        from exporters.nano import synthetic

        val = synthetic.generate_dataset(work / "val", args.val_size, synthetic.VAL_SEED)
        calib = (
            Path(synthetic.generate_dataset(work / "calib", args.calib_size, CALIB_SEED)).parent
            / "images"
        )
        dataset = load_dataset(val)
        bench_images = photos[:4]
    else:
        calib = photo_crops(
            photos, work / "calib", per_image=max(1, args.calib_size // len(photos))
        )
    em = build_family(name, photos, None)
    paths = make_variants(em, name, work, calib)
    out = {}
    for variant, path in paths.items():
        row = latency(path, photos if name != "nano" else bench_images, args.iters)
        row.update(
            nano_map(path, dataset)
            if name == "nano"
            else (
                {"agreement": agreement(paths["fp32"], path, photos)} if variant != "fp32" else {}
            )
        )
        out[variant] = row
    base = out["fp32"]["inference_p50_ms"]
    for row in out.values():
        row["speedup_vs_fp32"] = base / row["inference_p50_ms"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--families",
        nargs="*",
        default=["nano", "ssdlite320_mobilenet_v3_large", "retinanet_resnet50_fpn"],
    )
    ap.add_argument("--photos", default=str(PHOTOS))
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--val-size", type=int, default=500)
    ap.add_argument("--calib-size", type=int, default=320)
    ap.add_argument("--json", default="benchmarks/results/precision.json")
    args = ap.parse_args()
    photos = load_photos(Path(args.photos))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            results[name] = run_family(name, args, photos, Path(tmp) / name)
            for variant, row in results[name].items():
                acc = (
                    f"mAP {row['mAP']:.4f} mAP50 {row['mAP50']:.4f}"
                    if "mAP" in row
                    else (
                        "matched"
                        f" {min(row['agreement']['matched_a'], row['agreement']['matched_b']):.3f}"
                        f" (of {row['agreement']['detections_a']}), score delta"
                        f" {row['agreement']['score_delta']['mean']:.4f}"
                        if "agreement" in row
                        else "reference"
                    )
                )
                print(
                    f"{name:32s} {variant:9s} inference p50 {row['inference_p50_ms']:8.2f} ms "
                    f" x{row['speedup_vs_fp32']:.2f}  {acc}"
                )
    path = write_results(
        args.json,
        "precision",
        {
            "includes": __doc__.split("Per family:")[1].split("Usage")[0].strip(),
            "families": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
