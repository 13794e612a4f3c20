"""INT8 under an accuracy budget: sensitivity, fallback, calibration size, held-out agreement.

Models
  nano      the shipped weights (exporters/nano/weights/nano.pt), NMS in graph, 320 px.
  ssdlite   torchvision SSDlite320-MobileNetV3 with 6 classes + background. No pretrained weights
            can be downloaded here and full training does not fit this shared 2-core CPU (one SGD
            step on 16 images took 55-95 s under the load of the run), so: backbone and head
            depthwise stages randomly initialised with BatchNorm statistics re-estimated on
            synthetic images; the head's final 1x1 classification and box-regression convolutions
            trained (Adam, SSD loss, cached features) on nano's synthetic training data, so the
            scores and boxes are learned, not random.
Data (nano's synthetic generator, disjoint seeds): train 1, mAP/test 2, calibration 3, held-out 4,
labelled set for --budget-map 5. Per model: plain INT8 (TensorRT Q/DQ layout, float graph FP32) and
--budget (nano also --budget-map): the budgeted graphs are INT8 Q/DQ + FP16 (fallen-back layers and
the rest of the float graph, FP16 scales, opset 19; NMS/decode/last head convs FP32), and the search
measures that graph through ONNX Runtime's CPU FP16 path; the layer ranking is measured on the
FP32-float Q/DQ graph. The search sees two thirds of the held-out images; the last third ("unseen")
and independent test images (seed 2) it never saw are reported apart. Agreement = edgedet compare
matching vs FP32: matched = min(matched_a, matched_b) at IoU 0.9.
Usage: python -m benchmarks.precision_budget [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.common import write_results

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"
HOLDOUT_SEED = 4


def synthetic(folder: Path, n: int, seed: int) -> Path:
    from exporters.nano import synthetic as syn

    syn.generate_dataset(folder, n, seed)
    return folder / "images"


def feeds_of(folder: Path, input_info, limit: int | None = None):
    from edgedet.onnx.quantize.calibration import CalibrationSet

    return list(CalibrationSet(_files(folder, limit), input_info).batches())


def _files(folder: Path, limit: int | None):
    from edgedet.onnx.quantize.calibration import evenly_spaced
    from edgedet.preprocess import list_images

    files = list_images(folder)
    return evenly_spaced(files, limit) if limit else files


def agreement_on(fp32: Path, variant: Path, feeds, min_score: float) -> dict:
    """Detection agreement of ``variant`` with FP32 on prepared input feeds (independent images)."""
    import onnx

    from edgedet.manifest import read_manifest
    from edgedet.onnx.quantize.sensitivity import DetectionProbe, agreement

    probe = DetectionProbe(read_manifest(fp32), feeds, min_score)
    return agreement(probe.detections(onnx.load(fp32)), probe.detections(onnx.load(variant)))


def quantize_timed(src: Path, dst: Path, **kw) -> tuple[dict, float]:
    from edgedet.onnx.quantize.api import QuantizeOptions, quantize

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = quantize(src, dst, QuantizeOptions(mode="int8", **kw))
    res.precision["warnings"] = [
        str(w.message) for w in caught if issubclass(w.category, UserWarning)
    ]
    return res.precision, time.perf_counter() - t0


def check(path: Path) -> int:
    import onnx

    from edgedet.onnx.quantize.check import check_qdq

    return len(check_qdq(onnx.load(path)))


def nano_map(path: Path, dataset) -> dict:
    import edgedet
    from edgedet.eval.runner import evaluate

    with edgedet.load(path, providers=["cpu"]) as det:
        s = evaluate(det, dataset)
    return {"mAP": s["mAP"], "mAP50": s["mAP50"]}


def summary(p: dict) -> dict:
    keep = (
        "calibration_images",
        "holdout",
        "int8_agreement",
        "range_coverage",
        "sensitivity_top",
        "warnings",
    )
    out = {k: p[k] for k in keep if k in p}
    if "budget" in p:
        out["budget"] = {k: v for k, v in p["budget"].items() if k != "search"}
        out["budget"]["search_steps"] = len(p["budget"]["search"])
        out["budget"]["fp16_layers"] = len(p["budget"]["fallback_layers"])
        # prefix 0: plain INT8 with FP16 around
        out["budget"]["int8_fp16_no_fallback"] = p["budget"]["search"][0]
    return out


def run_nano(work: Path, args) -> dict:
    from edgedet.eval.datasets import load_dataset
    from edgedet.manifest import read_manifest
    from exporters.pipeline import ExportOptions, export

    fp32 = work / "nano.onnx"
    export(ExportOptions(model="nano"), fp32)
    calib = synthetic(work / "calib", args.calib_size, 3)
    held = synthetic(work / "held", args.holdout, HOLDOUT_SEED)
    val = synthetic(work / "val", args.val_size, 2).parent / "annotations.json"
    dataset = load_dataset(val)
    info = read_manifest(fp32).input
    test_feeds = feeds_of(val.parent / "images", info, args.test_images)
    out: dict = {"fp32": nano_map(fp32, dataset)}
    common = {"calib_dir": str(calib), "holdout_dir": str(held), "cache_dir": str(work / "cache")}
    labelled = synthetic(work / "labelled", args.map_size, 5).parent / "annotations.json"
    rows = {}
    for name, kw in (
        ("int8", {}),
        (
            f"budget_{args.nano_budget}",
            {"budget": args.nano_budget, "sensitivity": str(work / "nano_sens.json")},
        ),
        (
            f"budget_map_{args.nano_budget_map}",
            {"budget_map": args.nano_budget_map, "map_data": str(labelled)},
        ),
    ):
        path = work / f"nano.{name}.onnx"
        p, secs = quantize_timed(fp32, path, **common, **kw)
        rows[name] = {
            **summary(p),
            **nano_map(path, dataset),
            "quantize_s": secs,
            "check_qdq_violations": check(path),
            "test_agreement": agreement_on(fp32, path, test_feeds, 0.25),
        }
        rows[name]["mAP_drop_pt"] = 100 * (out["fp32"]["mAP"] - rows[name]["mAP"])
        held_out = p["budget"]["agreement"] if "budget" in p else p["int8_agreement"]
        print(
            f"nano {name}: mAP {rows[name]['mAP']:.4f} (drop {rows[name]['mAP_drop_pt']:.2f} pt),"
            f" held-out matched {held_out['matched']:.3f}, {secs:.0f} s",
            flush=True,
        )
    out.update(rows)
    if args.sweep:
        out["sweep"] = calib_sweep(fp32, work, common, test_feeds, args)
    out["range_coverage_vs_photos"] = photo_coverage(
        fp32, work / "nano.int8.onnx", info, feeds_of(calib, info, 32)
    )
    return out


def calib_sweep(fp32: Path, work: Path, common: dict, test_feeds, args) -> dict:
    """--calib-size guidance: how held-out and test agreement move with 24 / 100 / 300 images."""
    out = {}
    for n in args.sweep:
        path = work / f"nano.int8.c{n}.onnx"
        p, secs = quantize_timed(fp32, path, **common, calib_size=n)
        out[str(n)] = {
            "held_out": p["int8_agreement"],
            "range_coverage": p["range_coverage"],
            "test": agreement_on(fp32, path, test_feeds, 0.25),
            "warnings": p["warnings"],
            "quantize_s": secs,
        }
        print(
            f"nano calib {n}: held-out matched {p['int8_agreement']['matched']:.3f}, test matched "
            f"{out[str(n)]['test']['matched']:.3f}",
            flush=True,
        )
    return out


def photo_coverage(fp32: Path, int8: Path, info, calib_feeds) -> dict:
    """The distribution-shift check with real photos as the held-out set (calibrated on synthetic
    images)."""
    import onnx

    from edgedet.onnx.quantize.sensitivity import range_coverage, shift_warning

    cov = range_coverage(onnx.load(fp32), onnx.load(int8), feeds_of(PHOTOS, info), calib_feeds)
    cov["warns"] = shift_warning(cov) is not None
    return cov


# ---------------------------------------------------------------- SSDlite with a trained head


def ssd_train_head(em, train_root: Path, args, log=print) -> dict:
    """BatchNorm statistics from synthetic images, then the head's last 1x1 convs trained on cached
    features."""
    import torch

    from exporters.nano.train import letterboxed_split

    torch.manual_seed(0)
    ssd = em.module.model
    images, targets = letterboxed_split(train_root, 320, 1)
    n = min(len(images), args.ssd_train)
    x_all = torch.from_numpy(np.array(images[:n])).permute(0, 3, 1, 2).float() / 255
    norm = em.module.normalize
    t0 = time.perf_counter()
    with torch.no_grad():  # BatchNorm statistics from the synthetic images (random init has none)
        for bn in [
            m for m in ssd.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]:
            bn.reset_running_stats()
            bn.momentum = None
        ssd.train()
        for i in range(0, min(n, 64), 16):
            feats = list(ssd.backbone(norm(x_all[i : i + 16])).values())
            for head in (ssd.head.classification_head, ssd.head.regression_head):
                for level, f in zip(head.module_list, feats):
                    level[0](f)
        ssd.eval()
        cls_in, reg_in = [], []
        for i in range(0, n, 16):  # cached inputs of the last 1x1 convolutions
            feats = list(ssd.backbone(norm(x_all[i : i + 16])).values())
            cls_in.append(
                [
                    lvl[0](f).half()
                    for lvl, f in zip(ssd.head.classification_head.module_list, feats)
                ]
            )
            reg_in.append(
                [lvl[0](f).half() for lvl, f in zip(ssd.head.regression_head.module_list, feats)]
            )
    cache_s = time.perf_counter() - t0
    cls_in = [torch.cat([c[k] for c in cls_in]) for k in range(len(cls_in[0]))]
    reg_in = [torch.cat([c[k] for c in reg_in]) for k in range(len(reg_in[0]))]
    anchors = em.module.anchors
    from torchvision.ops import box_iou

    tg = [
        {"boxes": torch.from_numpy(t[:, 1:]), "labels": torch.from_numpy(t[:, 0]).long() + 1}
        for t in targets[:n]
    ]
    matched = [
        (
            ssd.proposal_matcher(box_iou(t["boxes"], anchors))
            if len(t["boxes"])
            else torch.full((len(anchors),), -1, dtype=torch.int64)
        )
        for t in tg
    ]
    last = [lvl[1] for lvl in ssd.head.classification_head.module_list] + [
        lvl[1] for lvl in ssd.head.regression_head.module_list
    ]
    opt = torch.optim.Adam([p for m in last for p in m.parameters()], lr=args.ssd_lr)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    losses = []
    for step in range(args.ssd_steps):
        idx = torch.from_numpy(rng.choice(n, args.ssd_batch, replace=False))
        head = {
            "cls_logits": _levels(ssd.head.classification_head, [c[idx].float() for c in cls_in]),
            "bbox_regression": _levels(ssd.head.regression_head, [r[idx].float() for r in reg_in]),
        }
        loss = ssd.compute_loss(
            [tg[i] for i in idx], head, [anchors] * len(idx), [matched[i] for i in idx]
        )
        total = loss["bbox_regression"] + loss["classification"]
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
        if step % 50 == 0 or step == args.ssd_steps - 1:
            log(f"  ssdlite head step {step}: loss {losses[-1]:.3f}")
    return {
        "train_images": n,
        "feature_cache_s": cache_s,
        "train_s": time.perf_counter() - t0,
        "steps": args.ssd_steps,
        "batch": args.ssd_batch,
        "loss_first": losses[0],
        "loss_last": float(np.mean(losses[-20:])),
    }


def _levels(head, inputs):
    """SSDScoringHead's output layout from the last 1x1 convs on cached per-level inputs."""
    import torch

    outs = []
    for level, x in zip(head.module_list, inputs):
        y = level[1](x)
        b, _, h, w = y.shape
        y = (
            y.view(b, -1, head.num_columns, h, w)
            .permute(0, 3, 4, 1, 2)
            .reshape(b, -1, head.num_columns)
        )
        outs.append(y)
    return torch.cat(outs, 1)


def run_ssdlite(work: Path, args) -> dict:
    import torch

    from edgedet.manifest import read_manifest
    from exporters.nano.synthetic import CLASS_NAMES
    from exporters.pipeline import ExportOptions, build_exportable, export

    torch.set_num_threads(2)
    name = "ssdlite320_mobilenet_v3_large"
    train_root = synthetic(work / "train", args.ssd_train, 1).parent
    opts = ExportOptions(
        model=name,
        num_classes=len(CLASS_NAMES) + 1,
        nms_overrides={"score_threshold": 0.05, "max_output_boxes": 100},
    )
    # the random initialisation (the runs recorded so far were not seeded here)
    torch.manual_seed(0)
    em = build_exportable(opts)
    training = ssd_train_head(em, train_root, args)
    fp32 = work / "ssdlite.onnx"
    export(opts, fp32, model=em)
    calib = synthetic(work / "calib", args.ssd_calib, 3)
    held = synthetic(work / "held", args.holdout, HOLDOUT_SEED)
    test = synthetic(work / "test", args.test_images, 2)
    test_feeds = feeds_of(test, read_manifest(fp32).input)
    out: dict = {"training": training}
    common = {
        "calib_dir": str(calib),
        "holdout_dir": str(held),
        "cache_dir": str(work / "cache"),
        "min_score": args.ssd_min_score,
    }
    variants = [("int8", {})] + [
        (
            f"budget_{args.budget}_{mode}",
            {
                "budget": args.budget,
                "sensitivity_mode": mode,
                "sensitivity": str(work / f"ssd_sens_{mode}.json"),
            },
        )
        for mode in args.ssd_modes
    ]
    for variant, kw in variants:
        path = work / f"ssdlite.{variant}.onnx"
        p, secs = quantize_timed(
            fp32, path, **common, sensitivity_images=args.ssd_sens_images, **kw
        )
        out[variant] = {
            **summary(p),
            "quantize_s": secs,
            "check_qdq_violations": check(path),
            "test_agreement": agreement_on(fp32, path, test_feeds, args.ssd_min_score),
        }
        held_out = p["budget"]["agreement"] if "budget" in p else p["int8_agreement"]
        unseen = (
            p["budget"]["unseen"].get("matched", float("nan")) if "budget" in p else float("nan")
        )
        print(
            f"ssdlite {variant}: held-out matched {held_out['matched']:.3f}, unseen {unseen:.3f},"
            f" test matched {out[variant]['test_agreement']['matched']:.3f}, {secs:.0f} s",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["nano", "ssdlite"])
    ap.add_argument("--budget", type=float, default=0.97)
    ap.add_argument(
        "--nano-budget",
        type=float,
        default=0.99,
        help=(
            "nano's plain INT8 already matches ~97 %%; its mAP target (<= 0.2 pt) needs a tighter"
            " budget"
        ),
    )
    ap.add_argument(
        "--nano-budget-map", type=float, default=0.2, help="--budget-map for nano (mAP points)"
    )
    ap.add_argument(
        "--map-size", type=int, default=64, help="labelled images the --budget-map search evaluates"
    )
    ap.add_argument("--calib-size", type=int, default=300)
    ap.add_argument("--holdout", type=int, default=64)
    ap.add_argument("--val-size", type=int, default=500)
    ap.add_argument("--test-images", type=int, default=100)
    ap.add_argument("--sweep", type=int, nargs="*", default=[24, 100, 300])
    ap.add_argument("--ssd-train", type=int, default=256)
    ap.add_argument("--ssd-steps", type=int, default=300)
    ap.add_argument("--ssd-batch", type=int, default=32)
    ap.add_argument("--ssd-lr", type=float, default=3e-3)
    ap.add_argument("--ssd-calib", type=int, default=150)
    ap.add_argument("--ssd-sens-images", type=int, default=16)
    ap.add_argument("--ssd-min-score", type=float, default=0.25)
    ap.add_argument(
        "--ssd-modes", nargs="*", default=["alone"], help="sensitivity modes to rank by"
    )
    ap.add_argument("--json", default="benchmarks/results/precision_budget.json")
    args = ap.parse_args()
    results = {"load_average_at_start": os.getloadavg()}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            results[model] = (run_nano if model == "nano" else run_ssdlite)(Path(tmp) / model, args)
    results["load_average_at_end"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - t0
    path = write_results(
        args.json,
        "precision_budget",
        {"includes": __doc__.split("Usage")[0].strip(), "args": vars(args), **results},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
