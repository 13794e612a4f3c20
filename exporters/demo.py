"""`edgedet demo`: the whole pipeline on the built-in nano model, with a report a user can read.

Steps: generate the synthetic validation set -> export nano to ONNX -> mAP of the
PyTorch model and of every artifact -> latency of each -> markdown report, latency plot,
annotated images. Each row of the report is a :class:`Variant`; later stages
(INT8, FP16, TensorRT) add rows by adding variants.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgedet.bench import BenchConfig, bench_detector, machine_info
from edgedet.eval.datasets import load_dataset
from edgedet.eval.runner import evaluate
from edgedet.fileio import write_bytes_atomic, write_text_atomic
from edgedet.preprocess import read_image


@dataclass
class Variant:
    """One row of the demo report: how to open it and what it is."""

    name: str
    open: Callable  # () -> Detector
    description: str
    artifact: Path | None = None
    results: dict = field(default_factory=dict)


CALIB_SEED = 3  # synthetic split for INT8 calibration: disjoint from train (1) and validation (2)
CALIB_SIZE = (
    300  # edgedet.onnx.quantize.calibration.RECOMMENDED_IMAGES: fewer calibrate with a warning
)


@dataclass
class DemoConfig:
    out: Path = Path("demo-output")
    val_size: int | None = None  # None: the standard validation split size
    bench_iters: int = 50
    bench_warmup: int = 10
    annotated: int = 4


def run_demo(config: DemoConfig, say: Callable[[str], None] = print) -> dict:
    """Run every stage; returns the results dict also written to ``out/results.json``."""
    from exporters.nano import synthetic

    out = Path(config.out)
    t0 = time.perf_counter()
    size = config.val_size or synthetic.VAL_SIZE
    data_dir = out / "data" / f"val-{synthetic.VAL_SEED}-{size}"
    if not (data_dir / "annotations.json").exists():
        say(f"generating {size} synthetic validation images -> {data_dir}")
        synthetic.generate_dataset(data_dir, size, synthetic.VAL_SEED)
    dataset = load_dataset(data_dir)
    calib_dir = out / "data" / f"calib-{CALIB_SEED}-{CALIB_SIZE}"
    if not (calib_dir / "annotations.json").exists():
        say(f"generating {CALIB_SIZE} synthetic calibration images -> {calib_dir}")
        synthetic.generate_dataset(calib_dir, CALIB_SIZE, CALIB_SEED)
    variants = build_variants(out, calib_dir / "images", say)
    for v in variants:
        say(f"[{v.name}] evaluating on {size} images")
        with v.open() as det:
            v.results["eval"] = evaluate(det, dataset)
            say(
                f"[{v.name}] mAP@0.5:0.95 {v.results['eval']['mAP']:.4f}  mAP@0.5"
                f" {v.results['eval']['mAP50']:.4f}"
            )
            say(f"[{v.name}] benchmarking ({config.bench_iters} iterations, batch 1)")
            images = [read_image(dataset.image_path(im)) for im in dataset.coco["images"][:8]]
            v.results["bench"] = bench_detector(
                det, images, BenchConfig((1,), config.bench_iters, config.bench_warmup)
            )
            v.results["backend"] = det.backend.describe()
    annotate(variants[-1], dataset, out / "images", config.annotated)
    results = {
        "machine": machine_info(),
        "dataset": str(data_dir),
        "images": size,
        "variants": {
            v.name: {"description": v.description, "artifact": str(v.artifact or ""), **v.results}
            for v in variants
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    plot_latency(results, out / "latency.png")
    write_text_atomic(out / "report.md", render_report(results))
    say(
        f"wrote {out}/report.md, results.json, latency.png and {config.annotated} annotated images "
        f"in {results['seconds']} s"
    )
    return results


def build_variants(out: Path, calib_images: Path, say) -> list[Variant]:
    """PyTorch reference, the exported ONNX model, and its FP16 and INT8 copies, all on the CPU."""
    import warnings

    import edgedet
    from edgedet.onnx.quantize.api import QuantizeOptions, quantize
    from exporters.pipeline import ExportOptions, build_exportable, export
    from exporters.torch_backend import torch_detector

    options = ExportOptions(model="nano")
    exportable = build_exportable(options)
    models = out / "models"
    onnx_path = models / "nano.onnx"
    say(f"exporting nano -> {onnx_path}")
    res = export(options, onnx_path, model=exportable)
    say(f"exported in {sum(res.timings.values()):.1f} s (NMS: {res.manifest.nms_implementation})")
    variants = [
        Variant(
            "pytorch", lambda: torch_detector(exportable), "PyTorch fp32 on CPU, host NMS (numpy)"
        ),
        Variant(
            "onnxruntime-fp32",
            lambda: edgedet.load(onnx_path, providers=["cpu"]),
            "ONNX fp32, NMS in graph, ONNX Runtime CPU",
            onnx_path,
        ),
    ]
    for mode, description in (
        ("fp16", "FP16 graph for TensorRT (I/O, head, NMS in FP32), run by ONNX Runtime CPU"),
        (
            "int8",
            "INT8 Q/DQ laid out for TensorRT, 300 calibration images, run by ONNX Runtime CPU",
        ),
    ):
        path = models / f"nano.{mode}.onnx"
        say(f"quantising -> {path}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize(
                onnx_path,
                path,
                QuantizeOptions(
                    mode=mode, calib_dir=str(calib_images), cache_dir=str(out / "cache")
                ),
            )
        variants.append(
            Variant(
                f"onnxruntime-{mode}",
                lambda p=path: edgedet.load(p, providers=["cpu"]),
                description,
                path,
            )
        )
    return variants


def annotate(variant: Variant, dataset, folder: Path, count: int) -> None:
    import cv2

    with variant.open() as det:
        for im in dataset.coco["images"][:count]:
            rgb = read_image(dataset.image_path(im))
            drawn = det(rgb, min_score=0.3).draw(rgb)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            write_bytes_atomic(folder / f"{Path(im['file_name']).stem}.jpg", buf.tobytes())


def plot_latency(results: dict, path: Path) -> None:
    """Bar chart of p50 latency per stage and variant (skipped when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = list(results["variants"])
    stages = ("preprocess", "inference", "postprocess")
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.5))
    left = [0.0] * len(names)
    for stage in stages:
        vals = [results["variants"][n]["bench"]["batches"]["1"][stage]["p50"] for n in names]
        ax.barh(names, vals, left=left, label=stage)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("p50 latency per image, batch 1 (ms)")
    ax.set_title(
        f"nano 320x320 on {results['machine']['cpu'][:40]} ({results['machine']['cores']} cores)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_report(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# edgedet demo: nano detector",
        "",
        (
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}. Dataset:"
            f" {results['images']} synthetic validation images ({results['dataset']}). Total time"
            f" {results['seconds']} s."
        ),
        "",
        (
            "| variant | mAP@0.5:0.95 | mAP@0.5 | Δ mAP vs PyTorch | inference p50 (ms) |"
            " end-to-end p50 (ms) | description |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    base = next(iter(results["variants"].values()))["eval"]["mAP"]
    for name, v in results["variants"].items():
        b = v["bench"]["batches"]["1"]
        lines.append(
            f"| {name} | {v['eval']['mAP']:.4f} | {v['eval']['mAP50']:.4f} |"
            f" {v['eval']['mAP'] - base:+.4f} | {b['inference']['p50']:.2f} |"
            f" {b['end_to_end']['p50']:.2f} | {v['description']} |"
        )
    lines += [
        "",
        (
            "Latency: batch 1, images already decoded; *inference* is the backend call (model +"
            " in-graph NMS for ONNX; the torch forward for PyTorch, whose NMS runs on the host and"
            " is counted in post-processing); *end-to-end* adds letterbox and post-processing. See"
            " latency.png."
        ),
        (
            "FP16 and INT8 rows run in ONNX Runtime on this CPU: they show the accuracy of the"
            " files TensorRT would build, not their speed (the Q/DQ layout targets TensorRT's"
            " fusions; ONNX Runtime's CPU kernels gain nothing from it). TensorRT rows need a GPU"
            " with TensorRT: `edgedet build` + `edgedet bench` there."
        ),
        "",
        "Annotated images (ONNX Runtime, score ≥ 0.3) are in images/.",
    ]
    return "\n".join(lines) + "\n"
