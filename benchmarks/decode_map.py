"""mAP of nano with reduced-scale JPEG decoding (the runtime default) against full decoding.

A JPEG decodes at 1/2, 1/4 or 1/8 scale when it stays at least as large as its letterboxed size
(edgedet.preprocess.read_image_for_input). The synthetic validation images
(exporters/nano/synthetic.py, 240..640 px, random aspect) are almost never twice their letterboxed
size for nano's 320 input, so the test sets are the validation split upscaled ``--factor`` times
(bicubic, JPEG quality 90, annotations scaled alike): x2 mostly decodes at 1/2 with the resize
left nearly nothing to do, x4 at 1/4 (``reduced_images`` counts the scales used). Both runs score
the same files with edgedet.eval (COCO mAP at the graph's thresholds); the only difference is
``edgedet.load(..., full_decode=True|False)``. Also times decode + letterbox per image both ways.
Usage: python -m benchmarks.decode_map --model nano.onnx [--images 500] [--factor 2 4]
       [--also-original] [--json benchmarks/results/decode_map.json]
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


def decode_scales(ds, height: int, width: int) -> dict[str, int]:
    """How many images of ``ds`` decode at each DCT scale for a (height, width) input."""
    from edgedet.preprocess import read_image_for_input

    counts: dict[str, int] = {}
    for im in ds.coco["images"]:
        rgb, size = read_image_for_input(ds.image_path(im), height, width)
        key = "full" if rgb.shape[0] == size[0] else f"1/{round(size[0] / rgb.shape[0])}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


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
    ap.add_argument(
        "--factor", type=float, nargs="+", default=[2.0, 4.0], help="upscaled splits to score"
    )
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
    results = {}
    splits = [("original", val)] if args.also_original else []
    splits += [
        (f"upscaled_x{f:g}", upscaled_split(val, work / f"val_x{f:g}", f)) for f in args.factor
    ]
    for name, root in splits:
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
        row["reduced_images"] = decode_scales(ds, det.input.height, det.input.width)
        results[name] = row
        print(name, row)
    write_results(
        args.json,
        "decode_map",
        {"includes": INCLUDES, "images": args.images, "factors": args.factor, "results": results},
    )


if __name__ == "__main__":
    main()
