"""quantize(): an edgedet ONNX file -> FP16 or INT8 (Q/DQ) ONNX file + manifest."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgedet.errors import InputError, ModelError
from edgedet.fileio import check_output, sha256_file
from edgedet.manifest import manifest_path, read_manifest, write_onnx_artifact
from exporters.onnx_tools import check_model, load_onnx
from exporters.quantize.placement import detection_placement

MODES = ("fp16", "int8")


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


@dataclass
class QuantizeResult:
    path: Path
    precision: dict
    violations: list = field(default_factory=list)


def quantize(source: str | os.PathLike, output: str | os.PathLike, options: QuantizeOptions,
             progress=None) -> QuantizeResult:
    """Quantise ``source`` (an FP32 edgedet ONNX) into ``output``; nothing is written on failure."""
    if options.mode not in MODES:
        raise InputError(f"precision mode {options.mode} is not one of {', '.join(MODES)}")
    if options.mode == "int8" and not options.calib_dir:
        raise InputError("--int8 needs --calib DIR: a folder of representative images (300+ recommended)")
    output = check_output(output, [source])
    model = load_onnx(source)
    _refuse_quantized(model, source)
    manifest = read_manifest(source)
    _check_runs(model, source)
    _check_manifest(model, manifest, source)
    placement = detection_placement(model, options.keep_last_convs, tuple(options.exclude))
    precision = {"mode": options.mode, "kept_fp32": placement.summary(), "kept_fp32_nodes": placement.names}
    if options.mode == "fp16":
        from exporters.quantize.fp16 import to_fp16

        result = to_fp16(model, placement)
    else:
        result, info = _int8(model, manifest, placement, options, progress)
        precision.update(info)
    violations = []
    if options.mode == "int8" and options.target == "tensorrt":
        from exporters.quantize.check import check_qdq

        violations = check_qdq(result)
        if violations:
            raise ModelError(f"quantised graph breaks TensorRT's Q/DQ rules at {len(violations)} node(s), first: "
                             f"{violations[0]}; this is an edgedet bug, please report it")
    check_model(result, str(output))
    _check_runs(result, output)
    if options.mode == "int8" and options.target == "cpu" and options.speed_check:
        precision["cpu_speed_check"] = _cpu_speed_check(model, result, manifest.input, output)
    _write(result, output, manifest, precision, source)
    return QuantizeResult(output, precision, violations)


def _check_manifest(model, manifest, source) -> None:
    """The source's manifest must describe its graph (a copied or edited .json would be carried over)."""
    from types import SimpleNamespace

    from edgedet.detector import check_manifest_matches
    from exporters.onnx_tools import io_specs

    inputs, outputs = io_specs(model)
    check_manifest_matches(manifest, SimpleNamespace(inputs=inputs, outputs=outputs), manifest_path(source))


def _refuse_quantized(model, source) -> None:
    import onnx

    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "DynamicQuantizeLinear"}:
        raise InputError(f"{source} is already quantised (it has Q/DQ nodes); quantise the FP32 export instead")
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        raise InputError(f"{source} already holds FP16 weights; quantise the FP32 export instead")


def _check_runs(model, where) -> None:
    """ONNX Runtime must be able to load the graph (calibration runs it); names an unsupported op."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"ONNX Runtime cannot run {where} ({str(exc).splitlines()[0][:240]}); "
                         "an unsupported or custom op without a function body cannot be calibrated") from None


def _cpu_speed_check(fp32, int8, input_info, output, iters: int = 20) -> dict:
    """The CPU profile exists for speed: time both graphs here and refuse an INT8 model that is not faster.

    Detectors gain much less than classifiers from CPU INT8 (the box decode, sigmoid and NMS stay float),
    and depthwise networks can lose: measured, not assumed.
    """
    fp32_ms, int8_ms = _measure_cpu((fp32, int8), input_info, iters)
    if int8_ms >= fp32_ms:
        raise InputError(f"--target cpu INT8 measured slower than FP32 on this machine ({int8_ms:.1f} ms vs "
                         f"{fp32_ms:.1f} ms median, ONNX Runtime CPU); keep the FP32 model here, or pass "
                         f"--no-speed-check to write {output} anyway")
    return {"fp32_ms": fp32_ms, "int8_ms": int8_ms, "speedup": fp32_ms / int8_ms, "iterations": iters}


def _measure_cpu(models, input_info, iters: int) -> list[float]:
    """Median ms per model, ONNX Runtime CPU, the models run alternately so load affects both alike."""
    import time

    import numpy as np
    import onnxruntime as ort

    shape = [d if d > 0 else 1 for d in input_info.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    if input_info.dtype == "uint8":
        x = (x * 255).astype(np.uint8)
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in models]
    times = [[] for _ in sessions]
    for i in range(iters + 3):
        for j, sess in enumerate(sessions):
            t0 = time.perf_counter()
            sess.run(None, {input_info.name: x})
            if i >= 3:
                times[j].append(time.perf_counter() - t0)
    return [float(np.median(t) * 1e3) for t in times]


def _int8(model, manifest, placement, options, progress):
    from exporters.quantize.calibration import CalibrationSet
    from exporters.quantize.int8 import Int8Config, quantize_int8
    from exporters.quantize.passes import unify_concat_scales

    calib = CalibrationSet.from_folder(options.calib_dir, manifest.input, options.calib_size)
    config = Int8Config(options.method, options.target, Path(options.cache_dir) if options.cache_dir else None)
    result, info = quantize_int8(model, calib, placement, config, progress)
    info["concats_unified"] = unify_concat_scales(result) if options.target == "tensorrt" else 0
    info["calibration_set"] = {"folder": str(options.calib_dir), "fingerprint": calib.fingerprint()[:16]}
    return result, info


def _write(model, output: Path, manifest, precision: dict, source) -> None:
    m = copy.deepcopy(manifest)
    m.precision = precision
    m.source = {"onnx": str(source), "sha256": sha256_file(source), "from": manifest.source}
    m.artifact, m.created, m.tools = {}, "", {}
    write_onnx_artifact(model, output, m)  # artifact + manifest as one transaction


def fp32_sibling(path: str | os.PathLike) -> Path | None:
    """The FP32 ONNX a quantised artifact came from (for compare), if its manifest records it."""
    m = read_manifest(path, verify=False)
    src = m.source.get("onnx")
    return Path(src) if src and manifest_path(src).exists() else None
