"""Explicit Q/DQ INT8 with ONNX Runtime's static quantiser, configured for TensorRT's parser.

TensorRT profile (default; TensorRT Developer Guide "Working with Quantized Types", checked by
edgedet/onnx/quantize/check.py):
symmetric INT8 activations and weights, zero points 0, per-channel weights, per-tensor
activations, no INT32 bias DequantizeLinear, Q/DQ only on the inputs of Conv /
ConvTranspose / Gemm / MatMul / Add (both residual inputs), shared scales into Concat.
CPU profile: ONNX Runtime's own CPU recipe (uint8 asymmetric activations, outputs
quantised too, so its int8 kernels fuse); offered only where it measured faster than
FP32 (benchmarks/precision.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import InputError
from edgedet.onnx.quantize.calibration import CalibrationSet, OrtCalibrationReader
from edgedet.onnx.quantize.placement import Placement

METHODS = ("minmax", "entropy", "percentile")
TARGETS = ("tensorrt", "cpu")
TRT_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul", "Add"]


@dataclass
class Int8Config:
    method: str = (
        "minmax"  # keeps the full range of box-regression activations (Entropy clips outliers)
    )
    target: str = "tensorrt"
    cache_dir: Path | None = None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgedet" / "calibration"


def quantize_int8(
    model, calib: CalibrationSet, placement: Placement, config: Int8Config, progress=None
):
    """Return (Q/DQ ModelProto, info). Ranges are cached per (model, images, method, target)."""
    import onnx
    from onnxruntime.quantization import quantize_static

    if config.method not in METHODS:
        raise InputError(f"--method {config.method} is not one of {', '.join(METHODS)}")
    if config.target not in TARGETS:
        raise InputError(f"--target {config.target} is not one of {', '.join(TARGETS)}")
    kwargs = _profile(config)
    cache = _cache_path(model, calib, config)
    hit = cache.is_file() and _cache_usable(cache, config)
    with tempfile.TemporaryDirectory(prefix="edgedet-q-") as tmp, _quiet_ort_logging():
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, src)
        tmp_cache = cache if hit else Path(tmp) / "ranges.json"
        reader = None if hit else OrtCalibrationReader(calib, progress)
        quantize_static(
            str(src),
            str(dst),
            reader,
            nodes_to_exclude=placement.names,
            calibration_cache_path=tmp_cache,
            calibrate_method=_method(config.method),
            **kwargs,
        )
        if not hit:
            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmp_cache), cache)  # same dir not guaranteed; move then it is complete
        quantized = onnx.load(str(dst))
    return quantized, {
        "method": config.method,
        "target": config.target,
        "cache": str(cache),
        "cache_hit": hit,
        "calibration_images": calib.used if calib.used is not None else len(calib.files),
    }


def _cache_usable(cache: Path, config: Int8Config) -> bool:
    """A cache ONNX Runtime cannot read (truncated, edited, another method) is dropped and
    rebuilt."""
    import warnings

    try:
        from onnxruntime.quantization.calibrate import load_tensors_data

        ranges = load_tensors_data(cache)
        ok = ranges.calibration_method == _method(config.method) and len(ranges.data) > 0
    except Exception:  # noqa: BLE001 - any unreadable cache is rebuilt, never trusted
        ok = False
    if not ok:
        warnings.warn(
            f"calibration cache {cache} is unreadable or does not match; recalibrating",
            stacklevel=3,
        )
        with contextlib.suppress(OSError):
            cache.unlink()
    return ok


@contextlib.contextmanager
def _quiet_ort_logging():
    """The quantiser logs 'consider pre-processing' through the root logger on every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _profile(config: Int8Config) -> dict:
    from onnxruntime.quantization import QuantFormat, QuantType

    if config.target == "tensorrt":
        return dict(
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=TRT_OPS,
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "QDQKeepRemovableActivations": True,
                "OpTypesToExcludeOutputQuantization": TRT_OPS,
            },
        )
    return dict(
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"WeightSymmetric": True},
    )


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def _cache_path(model, calib: CalibrationSet, config: Int8Config) -> Path:
    key = hashlib.sha256()
    key.update(model.SerializeToString(deterministic=True))
    key.update(calib.fingerprint().encode())
    key.update(f"{config.method}|{config.target}|ort-ranges-v1".encode())
    return (config.cache_dir or default_cache_dir()) / f"{key.hexdigest()[:32]}.json"
