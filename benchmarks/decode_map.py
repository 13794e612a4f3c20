"""mAP of nano with reduced-scale JPEG decoding (the runtime default) against full decoding.

The synthetic validation images (exporters/nano/synthetic.py, 240..640 px) are no larger than
twice nano's 320 input, so no DCT scaling would happen on them. The test set is therefore the
validation split upscaled ``--factor`` times (bicubic, JPEG quality 90, annotations scaled alike):
large photos whose decode Pillow can reduce by 1/2..1/8. Both runs score the same files with
edgedet.eval (COCO mAP at the graph's thresholds); the only difference is
``edgedet.load(..., full_decode=True|False)``. Also times decode + letterbox per image both ways.
Usage: python -m benchmarks.decode_map --model nano.onnx [--images 500] [--factor 4]
       [--json benchmarks/results/decode_map.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_results

INCLUDES = __doc__.split("Usage:")[0].strip()


def upscaled_split(src: Path, out: Path, factor: float) -> Path:
    """Copy of the COCO split ``src`` with every image and box scaled by ``factor``."""
    from PIL import Image

    coco = json.loads((src / "annotations.json").read_text())
    (out / "images").mkdir(parents=True, exist_ok=True)
    for im in coco["images"]:
        target = out / "images" / im["file_name"]
        if not target.exists():
            with Image.open(src / "images" / im["file_name"]) as pic:
                size = (round(pic.width * factor), round(pic.height * factor))
                pic.convert("RGB").resize(size, Image.BICUBIC).save(target, quality=90)
        im["width"], im["height"] = round(im["width"] * factor), round(im["height"] * factor)
    for a in coco["annotations"]:
        a["bbox"] = [v * factor for v in a["bbox"]]
        a["area"] = a["area"] * factor * factor
    (out / "annotations.json").write_text(json.dumps(coco))
    return out


def decode_ms(det, paths: list[Path]) -> float:
    """Median ms of read + letterbox (Detector.preprocess) over ``paths``."""
    times = []
    for p in paths:
        t0 = time.perf_counter()
        det.preprocess([p])
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 2)


def main(argv=None) -> None:
    import edgedet
    from edgedet.eval.datasets import load_dataset
    from edgedet.eval.runner import evaluate
    from exporters.nano import synthetic

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model", required=True, help="nano ONNX file (edgedet export --model nano --weights ...)"
    )
    ap.add_argument("--images", type=int, default=synthetic.VAL_SIZE)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--work", default="data/decode_map", help="folder for the generated splits")
    ap.add_argument(
        "--also-original",
        action="store_true",
        help="also score the original split (no image there is large enough to be reduced)",
    )
    ap.add_argument("--json", default="benchmarks/results/decode_map.json")
    args = ap.parse_args(argv)
    work = Path(args.work)
    val = work / "val"
    if not (val / "annotations.json").is_file():
        synthetic.generate_dataset(val, args.images, synthetic.VAL_SEED)
    big = upscaled_split(val, work / f"val_x{args.factor:g}", args.factor)
    results = {}
    splits = [("original", val)] if args.also_original else []
    for name, root in splits + [(f"upscaled_x{args.factor:g}", big)]:
        ds = load_dataset(root)
        paths = [ds.image_path(im) for im in ds.coco["images"][:50]]
        row = {}
        for mode, full in (("full_decode", True), ("reduced_decode", False)):
            with edgedet.load(args.model, full_decode=full) as det:
                stats = evaluate(det, ds)
                row[mode] = {
                    "mAP": round(stats["mAP"] * 100, 3),
                    "mAP50": round(stats["mAP50"] * 100, 3),
                    "read_letterbox_ms_p50": decode_ms(det, paths),
                }
        row["mAP_drop_pt"] = round(row["full_decode"]["mAP"] - row["reduced_decode"]["mAP"], 3)
        results[name] = row
        print(name, row)
    write_results(
        args.json,
        "decode_map",
        {"includes": INCLUDES, "images": args.images, "factor": args.factor, "results": results},
    )


if __name__ == "__main__":
    main()
