"""Can this engine load here? Decided from the manifest, before TensorRT deserialises anything.

A plan file is tied to the TensorRT release and the GPU it was built on; TensorRT's own
refusal ("Version tag does not match", "generated on an incompatible device") names neither
side. These rules come from the TensorRT docs ("Engine Compatibility", 11.1; "Version
Compatibility", 10.16) and NvInfer.h:

* Default plans load only in the TensorRT release that built them.
* ``--version-compatible`` plans (BuilderFlag.VERSION_COMPATIBLE) load in the same or a later
  release ("engines built with TensorRT 10 work with TensorRT 11"), never an earlier one.
  With EXCLUDE_LEAN_RUNTIME the plan carries no runtime and needs the lean runtime of the
  exact building release (IRuntime::loadRuntime).
* NVIDIA's lean runtime runs version-compatible plans only.
* Hardware: NONE and SAME_COMPUTE_CAPABILITY need the building GPU's compute capability;
  AMPERE_PLUS needs compute capability 8.0 or newer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgedet.contract import HardwareCompatibility
from edgedet.errors import CompatibilityError
from edgedet.manifest import TensorRTSection
from edgedet.trt.plugins import PluginRecord
from edgedet.trt.version import TRTVersion, parse_compute_capability

REBUILD = (
    "rebuild the engine on this device from its ONNX file (`edgedet build model.onnx -o"
    " model.engine`)"
)
HW_LEVELS = HardwareCompatibility.values()


@dataclass
class EngineNeeds:
    """What an engine requires, read from the ``tensorrt`` section of its manifest."""

    trt_version: TRTVersion
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compatibility: str = "NONE"
    compute_capability: tuple[int, int] | None = None
    gpu_name: str | None = None
    plugins: list[PluginRecord] = field(default_factory=list)
    dla_core: int | None = None

    @classmethod
    def from_manifest(cls, section: TensorRTSection) -> EngineNeeds:
        gpu = section.gpu or {}
        return cls(
            TRTVersion.parse(section.version),
            bool(section.version_compatible),
            bool(section.exclude_lean_runtime),
            str(section.hardware_compatibility_level or "NONE").upper(),
            parse_compute_capability(gpu.get("compute_capability")),
            gpu.get("name"),
            list(section.plugins),
            section.dla_core,
        )


@dataclass
class Machine:
    """This machine's TensorRT and GPU; compute_capability None means no usable GPU."""

    trt_version: TRTVersion
    trt_flavour: str = "full"  # full | lean
    compute_capability: tuple[int, int] | None = None
    gpu_name: str | None = None
    gpu_error: str | None = None  # why no GPU is usable, when compute_capability is None


def version_problem(needs: EngineNeeds, here: Machine) -> str | None:
    """Why this TensorRT cannot deserialise the plan, or None."""
    built, have = needs.trt_version, here.trt_version
    desc = f"this machine has TensorRT {have}" + (
        " (lean runtime)" if here.trt_flavour == "lean" else ""
    )
    if not needs.version_compatible:
        if here.trt_flavour == "lean":
            return (
                f"the engine was built with TensorRT {built} without --version-compatible, and"
                f" {desc}, which runs version-compatible engines only; {REBUILD} with full"
                " TensorRT, rebuild it with `edgedet build --version-compatible`, or install full"
                f" TensorRT {built}"
            )
        if not built.same_release(have):
            return (
                f"the engine was built with TensorRT {built} and {desc}; a plan file loads only in"
                f" the TensorRT release that built it: {REBUILD}, or install TensorRT {built}"
            )
        return None
    if needs.exclude_lean_runtime and not built.same_release(have):
        return (
            "the engine was built --version-compatible without its lean runtime"
            f" (EXCLUDE_LEAN_RUNTIME) by TensorRT {built}, and {desc}; it needs exactly TensorRT"
            f" {built}: {REBUILD}, or install it"
        )
    if have < built:
        return (
            f"the version-compatible engine was built with TensorRT {built} and {desc};"
            " version-compatible engines run on the same or a newer TensorRT only: install"
            f" TensorRT {built} or newer, or {REBUILD}"
        )
    return None


def hardware_problem(needs: EngineNeeds, here: Machine) -> str | None:
    """Why this GPU cannot run the plan, or None (no GPU at all is a problem too)."""
    if here.compute_capability is None:
        return (
            f"no usable NVIDIA GPU here ({here.gpu_error or 'none visible'}); TensorRT engines"
            " need one"
        )
    want, have = needs.compute_capability, here.compute_capability
    if want is None:
        return None  # manifest without a GPU record: let TensorRT decide
    level = needs.hardware_compatibility
    gpu = (
        f"this GPU{f' ({here.gpu_name})' if here.gpu_name else ''} has compute capability"
        f" {have[0]}.{have[1]}"
    )
    if level == "AMPERE_PLUS":
        if have < (8, 0):
            return (
                "the engine was built with hardware compatibility AMPERE_PLUS (compute capability"
                f" 8.0+) and {gpu}: {REBUILD}"
            )
        return None
    if have != want:
        built_on = f"{needs.gpu_name}, " if needs.gpu_name else ""
        return (
            f"the engine was built for compute capability {want[0]}.{want[1]} ({built_on}hardware"
            f" compatibility {level}) and {gpu}: {REBUILD}"
        )
    return None


def hardware_warnings(needs: EngineNeeds, here: Machine) -> list[str]:
    """Loadable but not recommended: another GPU model with the same compute capability."""
    if (
        needs.hardware_compatibility == "NONE"
        and needs.gpu_name
        and here.gpu_name
        and needs.gpu_name != here.gpu_name
        and needs.compute_capability == here.compute_capability
    ):
        return [
            f"engine built on {needs.gpu_name}, running on {here.gpu_name} (same compute"
            " capability): TensorRT advises building on the device model that runs the engine"
        ]
    return []


def check(needs: EngineNeeds, here: Machine, plugin_problems: list[str] = ()) -> list[str]:
    """All reasons the engine cannot load here, most fundamental first (empty = fine)."""
    reasons = [r for r in (version_problem(needs, here), hardware_problem(needs, here)) if r]
    return reasons + list(plugin_problems)


def require_compatible(
    engine: str, needs: EngineNeeds, here: Machine, plugin_problems: list[str] = ()
) -> None:
    """CompatibilityError naming every difference between what ``engine`` needs and this machine."""
    reasons = check(needs, here, plugin_problems)
    if reasons:
        raise CompatibilityError(f"{engine} cannot run here: " + "; ".join(reasons))
