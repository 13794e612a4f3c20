"""Build options and which TensorRT flags they become on a given TensorRT version.

Pure decisions, no TensorRT import: :func:`select_flags` returns enum member *names*
(``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, ``BuilderFlag.FP16``, ...) that
:mod:`edgedet.onnx.engine.build` looks up on the real module. Enum values changed in 11.0, so only
names are ever used (python/src/infer/pyCore.cpp at tags v10.3.0 and v11.0: 11.0 dropped
EXPLICIT_BATCH and the weak-typing BuilderFlags). Every version rule is read from
:class:`edgedet.trt.version.Features`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgedet.errors import InputError
from edgedet.onnx.engine.profiles import BatchRange
from edgedet.trt.version import TRTVersion

LEGACY_MODES = ("fp16", "int8")
HW_COMPAT = {"none": None, "ampere_plus": "AMPERE_PLUS", "same_cc": "SAME_COMPUTE_CAPABILITY"}


@dataclass
class BuildOptions:
    """What `edgedet build` was asked for (sizes in bytes)."""

    batch: BatchRange | None = None
    workspace: int | None = (
        None  # MemoryPoolType.WORKSPACE limit; None = TensorRT's default (device memory)
    )
    timing_cache: str | None = None  # read if present, written after the build
    opt_level: int = 3  # builder_optimization_level 0..5 (TensorRT's default is 3)
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compatibility: str = "none"  # none | ampere_plus | same_cc
    plugins: list[str] = field(default_factory=list)
    dla_core: int | None = None
    legacy: str | None = None  # None | fp16 | int8: weak typing, TensorRT 10.x only
    verbose: bool = False


@dataclass
class FlagPlan:
    """TensorRT settings chosen for one build, as enum member names."""

    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    hardware_level: str | None
    device_type: str  # GPU | DLA
    precision: str  # strongly-typed | legacy-fp16 | legacy-int8
    notes: list[str] = field(default_factory=list)


def parse_size(text: str | int | None) -> int | None:
    """'4G', '512M', '1GiB', '1073741824' -> bytes (binary units); None stays None."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"--workspace takes a size such as 2G, 512M or a byte count; got '{text}'")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def validate(o: BuildOptions) -> None:
    """Option errors that need no TensorRT (caught before anything slow)."""
    if not 0 <= o.opt_level <= 5:
        raise InputError(f"--opt-level {o.opt_level} is outside 0..5 (TensorRT's default is 3)")
    if o.legacy is not None and o.legacy not in LEGACY_MODES:
        raise InputError(f"legacy precision '{o.legacy}' is not one of {', '.join(LEGACY_MODES)}")
    if o.exclude_lean_runtime and not o.version_compatible:
        raise InputError("--exclude-lean-runtime only applies to --version-compatible engines")
    if o.hardware_compatibility not in HW_COMPAT:
        raise InputError(
            f"--hardware-compat {o.hardware_compatibility} is not one of {', '.join(HW_COMPAT)}"
        )
    if o.dla_core is not None and o.dla_core < 0:
        raise InputError(f"--dla {o.dla_core}: DLA cores are numbered from 0")


def select_flags(version: TRTVersion, o: BuildOptions, dynamic: bool = False) -> FlagPlan:
    """Network/builder flags for ``o`` on TensorRT ``version``; InputError for combinations it
    lacks."""
    validate(o)
    f = version.features
    if not f.supported:
        raise InputError(
            f"TensorRT {version} is outside the versions edgedet supports (10.3 to 11.x)"
        )
    notes: list[str] = []
    network, builder, precision = _precision_flags(version, o, notes)
    if o.version_compatible:
        builder += ("VERSION_COMPATIBLE",) + (
            ("EXCLUDE_LEAN_RUNTIME",) if o.exclude_lean_runtime else ()
        )
    level = _hardware_level(version, o)
    device = "GPU"
    if o.dla_core is not None:
        builder += _dla_flags(version, o, dynamic, notes)
        device = "DLA"
    return FlagPlan(network, builder, level, device, precision, notes)


def _precision_flags(version: TRTVersion, o: BuildOptions, notes: list[str]):
    """Strongly typed everywhere; weak typing + FP16/INT8 builder flags only on 10.x when asked."""
    f = version.features
    if o.legacy is None:
        # 10.x: strong typing is opt-in via the creation flag; 11.x: always on, flag deprecated and
        # ignored
        return (("STRONGLY_TYPED",) if f.strongly_typed_flag else ()), (), "strongly-typed"
    if not f.weak_typing_flags:
        raise InputError(
            f"--legacy-{o.legacy} uses the weak-typing builder flags (BuilderFlag.FP16/INT8) that"
            f" TensorRT 11 removed, and this is TensorRT {version}: precision comes from the ONNX"
            f" file instead - make an FP16 or Q/DQ INT8 model with `edgedet quantize --{o.legacy}`"
            " and build that"
        )
    if f.weak_typing_deprecated:
        notes.append(
            f"--legacy-{o.legacy}: TensorRT {version} deprecates the weak-typing precision flags "
            "(removed in 11.0); prefer an FP16/INT8 ONNX from `edgedet quantize`"
        )
    # INT8 with explicit Q/DQ: FP16 as well, so layers outside Q/DQ pairs may run in FP16 (trtexec
    # --fp16 --int8)
    builder = ("FP16",) if o.legacy == "fp16" else ("FP16", "INT8")
    return (), builder, f"legacy-{o.legacy}"


def _hardware_level(version: TRTVersion, o: BuildOptions) -> str | None:
    level = HW_COMPAT[o.hardware_compatibility]
    if level == "SAME_COMPUTE_CAPABILITY" and not version.features.same_compute_capability_level:
        raise InputError(
            f"--hardware-compat same_cc needs TensorRT 10.10 or newer; this is {version}"
        )
    if level and o.dla_core is not None:
        raise InputError("--hardware-compat does not apply to DLA builds")
    return level


def _dla_flags(
    version: TRTVersion, o: BuildOptions, dynamic: bool, notes: list[str]
) -> tuple[str, ...]:
    """DLA needs FP16/INT8: via weak typing on 10.0-10.7, via ONNX tensor types on 11.4.1+."""
    mode = version.features.dla
    if mode is None:
        raise InputError(
            f"--dla: TensorRT {version} has no DLA support on Jetson (10.7 was the last 10.x"
            " release with DLA; 11.4.1+ brings it back on AGX Orin with JetPack 7.2.2); build for"
            " the GPU instead"
        )
    if mode == "legacy" and o.legacy is None:
        raise InputError(
            f"--dla on TensorRT {version} runs FP16/INT8 layers only and needs the weak-typing"
            " path: add --legacy-fp16 (or --legacy-int8 for a Q/DQ model)"
        )
    if dynamic:
        notes.append(
            "DLA with a dynamic batch: TensorRT runs such layers on the GPU (GPU fallback); "
            "build with a fixed --batch for DLA"
        )
    return ("GPU_FALLBACK",)


def strip_nms_function(version: TRTVersion, plugin_loaded: bool, has_function: bool) -> bool:
    """Drop the EdgeDetNMS local function before parsing? Only when a plugin is loaded and the
    parser would otherwise inline the function body (TensorRT < 10.7)."""
    return has_function and plugin_loaded and not version.features.plugin_over_local_function
