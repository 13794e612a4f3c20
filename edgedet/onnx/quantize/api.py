"""quantize(): an edgedet ONNX file -> FP16 or INT8 (Q/DQ) ONNX file + manifest."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgedet.errors import InputError, ModelError, first_line
from edgedet.fileio import check_output, check_writable, sha256_file
from edgedet.manifest import manifest_path, read_manifest, write_onnx_artifact
from edgedet.onnx.quantize.placement import detection_placement
from edgedet.onnx.tools import check_model, load_onnx

MODES = ("fp16", "int8")
FALLBACKS = ("fp16", "fp32")


@dataclass
class QuantizeOptions:
    mode: str = "int8"
    calib_dir: str | None = None
    calib_size: int | None = None
    method: str = "minmax"
    target: str = "tensorrt"
    exclude: tuple[str, ...] = ()
    keep_last_convs: bool = True
    cache_dir: str | None = None
    speed_check: bool = True  # --target cpu: write only if INT8 measured faster than FP32 here
    sensitivity: str | None = None  # write the per-layer sensitivity report (JSON) here
    budget: float | None = (
        None  # fall layers back until matched@IoU0.9 vs FP32 on held-out >= budget
    )
    holdout_dir: str | None = (
        None  # held-out images (default: a fifth of --calib, never calibrated on)
    )
    sensitivity_mode: str = (
        "alone"  # alone: one layer INT8 in FP32 (measured better); exclude: one out of full INT8
    )
    sensitivity_images: int = (
        32  # held-out images used per sensitivity variant (the budget uses all)
    )
    min_score: float = 0.25  # detections compared above this score (as `edgedet compare`)
    # precision of the float graph with --budget/--budget-map: fp16 (strongly typed) or fp32
    fallback: str = "fp16"
    budget_map: float | None = (
        None  # fall layers back until the mAP@.5:.95 drop vs FP32 on map_data <= this (points)
    )
    map_data: str | None = None  # labelled set for --budget-map (COCO JSON / folder, YOLO folder)
    map_images: int | None = None  # first N images of map_data (default all)
    # Rank layers on the graph written (FP16 around each variant) instead of the FP32-float Q/DQ
    # graph: one FP16 conversion per layer and ONNX Runtime's CPU FP16 path (~2.5x slower on nano);
    # the budget search always measures the graph written.
    rank_on_written: bool = False


@dataclass
class QuantizeResult:
    path: Path
    precision: dict
    violations: list = field(default_factory=list)


def quantize(
    source: str | os.PathLike, output: str | os.PathLike, options: QuantizeOptions, progress=None
) -> QuantizeResult:
    """Quantise ``source`` (an FP32 edgedet ONNX) into ``output``; nothing is written on failure."""
    if options.mode not in MODES:
        raise InputError(f"precision mode {options.mode} is not one of {', '.join(MODES)}")
    if options.mode == "int8" and not options.calib_dir:
        raise InputError(
            "--int8 needs --calib DIR: a folder of representative images (300+ recommended)"
        )
    _check_analysis_options(options)
    output = check_output(output, [source])
    report_path = check_writable(options.sensitivity) if options.sensitivity else None
    model = load_onnx(source)
    _refuse_quantized(model, source)
    manifest = read_manifest(source)
    _check_runs(model, source)
    _check_manifest(model, manifest, source)
    placement = detection_placement(model, options.keep_last_convs, tuple(options.exclude))
    precision = {
        "mode": options.mode,
        "kept_fp32": placement.summary(),
        "kept_fp32_nodes": placement.names,
    }
    if options.mode == "fp16":
        from edgedet.onnx.quantize.fp16 import to_fp16

        result = to_fp16(model, placement)
    else:
        result, info, report = _int8(model, manifest, placement, options, progress)
        precision.update(info)
    violations = []
    if options.mode == "int8" and options.target == "tensorrt":
        from edgedet.onnx.quantize.check import check_qdq

        violations = check_qdq(result)
        if violations:
            raise ModelError(
                f"quantised graph breaks TensorRT's Q/DQ rules at {len(violations)} node(s), first:"
                f" {violations[0]}; this is an edgedet bug, please report it"
            )
    check_model(result, str(output))
    _check_runs(result, output)
    if options.mode == "int8" and options.target == "cpu" and options.speed_check:
        precision["cpu_speed_check"] = _cpu_speed_check(model, result, manifest.input, output)
    _write(result, output, manifest, precision, source)
    if report_path is not None:
        from edgedet.onnx.quantize.report import write_report

        precision["sensitivity_report"] = [str(p) for p in write_report(report, report_path)]
    return QuantizeResult(output, precision, violations)


def _check_manifest(model, manifest, source) -> None:
    """The source's manifest must describe its graph (a copied or edited .json would be carried
    over)."""
    from types import SimpleNamespace

    from edgedet.detector import check_manifest_matches
    from edgedet.onnx.tools import io_specs

    inputs, outputs = io_specs(model)
    check_manifest_matches(
        manifest, SimpleNamespace(inputs=inputs, outputs=outputs), manifest_path(source)
    )


def _check_analysis_options(options: QuantizeOptions) -> None:
    from edgedet.onnx.quantize.sensitivity import MODES

    analysis = (
        options.sensitivity
        or options.budget is not None
        or options.holdout_dir
        or options.budget_map is not None
    )
    if analysis and options.mode != "int8":
        raise InputError(
            "--sensitivity, --budget, --budget-map and --holdout measure INT8 layers: use them with"
            " --int8"
        )
    if analysis and options.target != "tensorrt":
        raise InputError(
            "--sensitivity / --budget work on the TensorRT Q/DQ layout (--target tensorrt)"
        )
    if options.budget is not None and not 0.0 < options.budget <= 1.0:
        raise InputError(
            f"--budget is the matched fraction at IoU 0.9 to keep, in (0, 1]; got {options.budget}"
        )
    if options.budget_map is not None and not options.budget_map >= 0.0:
        raise InputError(
            "--budget-map is the mAP@.5:.95 drop allowed in points (e.g. 0.5), >= 0; got"
            f" {options.budget_map}"
        )
    if options.budget_map is not None and not options.map_data:
        raise InputError(
            "--budget-map needs --map-data: a labelled set (COCO annotations.json or a YOLO folder)"
        )
    if options.fallback not in FALLBACKS:
        raise InputError(f"--fallback {options.fallback} is not one of {', '.join(FALLBACKS)}")
    if options.sensitivity_mode not in MODES:
        raise InputError(
            f"--sensitivity-mode {options.sensitivity_mode} is not one of {', '.join(MODES)}"
        )


def _refuse_quantized(model, source) -> None:
    import onnx

    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "DynamicQuantizeLinear"}:
        raise InputError(
            f"{source} is already quantised (it has Q/DQ nodes); quantise the FP32 export instead"
        )
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        raise InputError(f"{source} already holds FP16 weights; quantise the FP32 export instead")


def _check_runs(model, where) -> None:
    """ONNX Runtime must be able to load the graph (calibration runs it); names an unsupported
    op."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(
            f"ONNX Runtime cannot run {where} ({first_line(exc, 240)}); "
            "an unsupported or custom op without a function body cannot be calibrated"
        ) from None


def _cpu_speed_check(fp32, int8, input_info, output, iters: int = 20) -> dict:
    """The CPU profile exists for speed: time both graphs here and refuse an INT8 model that is not
    faster.

    Detectors gain much less than classifiers from CPU INT8 (the box decode, sigmoid and NMS stay
    float), and depthwise networks can lose: measured, not assumed.
    """
    fp32_ms, int8_ms = _measure_cpu((fp32, int8), input_info, iters)
    if int8_ms >= fp32_ms:
        raise InputError(
            f"--target cpu INT8 measured slower than FP32 on this machine ({int8_ms:.1f} ms vs "
            f"{fp32_ms:.1f} ms median, ONNX Runtime CPU); keep the FP32 model here, or pass "
            f"--no-speed-check to write {output} anyway"
        )
    return {
        "fp32_ms": fp32_ms,
        "int8_ms": int8_ms,
        "speedup": fp32_ms / int8_ms,
        "iterations": iters,
    }


def _measure_cpu(models, input_info, iters: int) -> list[float]:
    """Median ms per model, ONNX Runtime CPU, the models run alternately so load affects both
    alike."""
    import time

    import numpy as np
    import onnxruntime as ort

    shape = [d if d > 0 else 1 for d in input_info.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    if input_info.dtype == "uint8":
        x = (x * 255).astype(np.uint8)
    sessions = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        for m in models
    ]
    times = [[] for _ in sessions]
    for i in range(iters + 3):
        for j, sess in enumerate(sessions):
            t0 = time.perf_counter()
            sess.run(None, {input_info.name: x})
            if i >= 3:
                times[j].append(time.perf_counter() - t0)
    return [float(np.median(t) * 1e3) for t in times]


def _int8(model, manifest, placement, options, progress):
    from edgedet.onnx.quantize.calibration import CalibrationSet, split_holdout
    from edgedet.onnx.quantize.int8 import Int8Config, quantize_int8
    from edgedet.onnx.quantize.passes import unify_concat_scales

    analysis = bool(
        options.sensitivity
        or options.budget is not None
        or options.holdout_dir
        or options.budget_map is not None
    )
    if analysis:
        calib, holdout = split_holdout(
            options.calib_dir, manifest.input, options.calib_size, options.holdout_dir
        )
    else:
        calib, holdout = (
            CalibrationSet.from_folder(options.calib_dir, manifest.input, options.calib_size),
            None,
        )
    config = Int8Config(
        options.method, options.target, Path(options.cache_dir) if options.cache_dir else None
    )
    result, info = quantize_int8(model, calib, placement, config, progress)
    info["concats_unified"] = unify_concat_scales(result) if options.target == "tensorrt" else 0
    info["calibration_set"] = {
        "folder": str(options.calib_dir),
        "fingerprint": calib.fingerprint()[:16],
    }
    report = None
    if analysis:
        result, extra, report = _analyse(
            model, result, manifest, calib, holdout, placement, options
        )
        info.update(extra)
    return result, info, report


def _analyse(fp32, qmodel, manifest, calib, holdout, placement, options):
    """Agreement on held-out images, calibration coverage, sensitivity ranking and the budget
    search."""
    import warnings

    from edgedet.onnx.quantize.calibration import CalibrationSet, evenly_spaced, split_unseen
    from edgedet.onnx.quantize.sensitivity import (
        DetectionProbe,
        agreement,
        range_coverage,
        sensitivity,
        shift_warning,
    )

    search_set, unseen_set = split_unseen(holdout) if _budgeted(options) else (holdout, None)
    feeds = list(search_set.batches())
    probe = DetectionProbe(manifest, feeds, options.min_score)
    ref = probe.detections(fp32)
    if sum(len(d) for d in ref) == 0:
        raise InputError(
            f"the FP32 model finds no detections above score {options.min_score} on the "
            f"{len(feeds)} held-out images: agreement cannot be measured; use images with objects "
            "the model detects"
        )
    calib_feeds = list(CalibrationSet(evenly_spaced(calib.files, 32), calib.input).batches())
    coverage = range_coverage(fp32, qmodel, feeds, calib_feeds)
    message = shift_warning(coverage)
    if message:
        warnings.warn(message, stacklevel=4)
    plain = agreement(ref, probe.detections(qmodel))
    info = {
        "holdout": {
            "images": len(feeds),
            "folder": str(options.holdout_dir or options.calib_dir),
            "split": "folder" if options.holdout_dir else "every 5th of --calib, not calibrated on",
            "min_score": options.min_score,
        },
        "int8_agreement": plain,
        "range_coverage": coverage,
    }
    if not (options.sensitivity or _budgeted(options)):
        return qmodel, info, None
    finish = _finisher(placement, options)
    idx = evenly_spaced(list(range(len(feeds))), options.sensitivity_images)
    small = DetectionProbe(manifest, [feeds[i] for i in idx], options.min_score)
    report = sensitivity(
        fp32,
        qmodel,
        small,
        options.sensitivity_mode,
        ref=[ref[i] for i in idx],
        finish=finish if options.rank_on_written else None,
    )
    report["holdout_images"] = len(idx)
    report["measured_on"] = (
        _graph_words(options)
        if options.rank_on_written or not finish
        else (
            "INT8 Q/DQ + FP32 elsewhere (the ranking only; the budget search measures the graph"
            " written)"
        )
    )
    info["sensitivity_top"] = [r["layer"] for r in report["ranking"][:5]]
    if _budgeted(options):
        qmodel, info["budget"] = _budget_search(
            fp32, qmodel, manifest, probe, ref, report, finish, unseen_set, options
        )
        report["budget"] = info["budget"]
    return qmodel, info, report


def _budgeted(options) -> bool:
    return options.budget is not None or options.budget_map is not None


def _finisher(placement, options):
    """The graph that ships from a Q/DQ variant: FP16 outside the Q/DQ pairs and the FP32
    placement."""
    if options.fallback == "fp32":
        return None
    from edgedet.onnx.quantize.fp16 import to_mixed

    return lambda model: to_mixed(model, placement)


def _graph_words(options) -> str:
    return (
        "INT8 Q/DQ + FP16 elsewhere (FP16 scales, opset >= 19), NMS/decode/last convs FP32: the"
        " graph written"
        if options.fallback == "fp16"
        else "INT8 Q/DQ + FP32 elsewhere: the graph written"
    )


def _budget_search(fp32, qmodel, manifest, probe, ref, report, finish, unseen_set, options):
    """Fall layers back (most sensitive first) until every budget given holds on the graph that
    ships."""
    import warnings

    from edgedet.onnx.quantize.sensitivity import DetectionProbe, agreement, fallback_search

    map_probe = fp32_map = None
    if options.budget_map is not None:
        map_probe = _map_probe(manifest, options)
        fp32_map = map_probe.map(fp32)["mAP"]

    def evaluate(model) -> dict:
        out = dict(agreement(ref, probe.detections(model)))
        if map_probe is not None:
            got = map_probe.map(model)
            out.update(mAP=got["mAP"], map_drop_pt=100.0 * (fp32_map - got["mAP"]))
        return out

    def meets(result) -> bool:
        ok = options.budget is None or result["matched"] >= options.budget
        return ok and (options.budget_map is None or result["map_drop_pt"] <= options.budget_map)

    found = fallback_search(
        fp32, qmodel, [r["layer"] for r in report["ranking"]], evaluate, meets, finish
    )
    if not found.met:
        warnings.warn(
            f"{_budget_words(options)}: even with every quantised layer in higher precision the"
            f" budget is not met (matched {found.agreement['matched']:.3f}"
            + (f", mAP drop {found.agreement['map_drop_pt']:.2f} pt)" if map_probe else ")"),
            stacklevel=5,
        )
    precision = "FP16" if options.fallback == "fp16" else "FP32"
    budget = {
        "matched_at_iou_0.9": options.budget,
        "met": found.met,
        "fallback_layers": found.fallback,
        "fallback_precision": f"{precision} (no Q/DQ on their inputs)",
        "layer_precision": {name: precision.lower() for name in found.fallback},
        "float_precision": _graph_words(options),
        "agreement": found.agreement,
        "int8_layers": report["layers"] - len(found.fallback),
        "ranking": options.sensitivity_mode,
        "search": found.history,
    }
    if map_probe is not None:
        budget.update(
            {
                "map_drop_pt_max": options.budget_map,
                "map_data": str(options.map_data),
                "map_images": len(map_probe.dataset.coco["images"][: options.map_images or None]),
                "fp32_mAP": fp32_map,
                "mAP": found.agreement["mAP"],
                "map_drop_pt": found.agreement["map_drop_pt"],
            }
        )
    if unseen_set is not None:
        unseen = DetectionProbe(manifest, list(unseen_set.batches()), options.min_score)
        budget["unseen"] = {
            "images": len(unseen.feeds),
            "note": "held-out images the search never saw",
            **agreement(unseen.detections(fp32), unseen.detections(found.model)),
        }
    else:
        budget["unseen"] = {
            "images": 0,
            "note": (
                "held-out set too small to keep a final unseen split apart "
                "(pass --holdout with 24+ images)"
            ),
        }
    return found.model, budget


def _budget_words(options) -> str:
    words = [f"--budget {options.budget}"] if options.budget is not None else []
    if options.budget_map is not None:
        words.append(f"--budget-map {options.budget_map}")
    return " ".join(words)


def _map_probe(manifest, options):
    from edgedet.eval.datasets import load_dataset
    from edgedet.onnx.quantize.sensitivity import MapProbe

    return MapProbe(manifest, load_dataset(options.map_data), options.map_images)


def _write(model, output: Path, manifest, precision: dict, source) -> None:
    m = copy.deepcopy(manifest)
    m.precision = precision
    m.source = {"onnx": str(source), "sha256": sha256_file(source), "from": manifest.source}
    m.artifact, m.created, m.tools = {}, "", {}
    write_onnx_artifact(model, output, m)  # artifact + manifest as one transaction
