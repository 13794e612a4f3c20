"""TensorRT versions and the one table that says which version has which feature.

Every "does TensorRT X have Y" decision in edgedet (builder flags, parser behaviour,
runtime API names) reads :class:`Features`; nothing else compares version numbers.
Sources, checked against the NVIDIA/TensorRT repository (tags v10.3.0 ... v11.1) and the
TensorRT docs; see docs/tensorrt.md for the table with references.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgedet.errors import InputError

# JetPack 6.x ships TensorRT 10.3; older versions lack the 10.x runtime API we use
MIN_SUPPORTED = (
    10,
    3,
)


@dataclass(frozen=True, order=True)
class TRTVersion:
    """A TensorRT version such as 10.3.0.30; missing trailing parts count as 0."""

    major: int
    minor: int = 0
    patch: int = 0
    build: int = 0

    @classmethod
    def parse(cls, text: str | TRTVersion) -> TRTVersion:
        """'10.3.0.30' / '11.4' / '10.12.0' -> TRTVersion; InputError for anything else."""
        if isinstance(text, TRTVersion):
            return text
        m = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?(?:[.+-]\w+)*\s*", str(text))
        if not m:
            raise InputError(f"'{text}' is not a TensorRT version (expected e.g. 10.3.0.30)")
        return cls(*(int(g) if g else 0 for g in m.groups()))

    def __str__(self) -> str:
        parts = [self.major, self.minor, self.patch] + ([self.build] if self.build else [])
        return ".".join(map(str, parts))

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def same_release(self, other: TRTVersion) -> bool:
        """Equal major.minor.patch and, when both sides know it, build number."""
        if (self.major, self.minor, self.patch) != (other.major, other.minor, other.patch):
            return False
        return not (self.build and other.build) or self.build == other.build

    @property
    def features(self) -> Features:
        return Features(self)


@dataclass(frozen=True)
class Features:
    """What one TensorRT version offers, in the terms edgedet's decisions need."""

    version: TRTVersion

    @property
    def supported(self) -> bool:
        """edgedet targets 10.3 <= TensorRT <= 11.x: JetPack 6 ships TensorRT 10.3 (JetPack 6
        release notes); the EdgeDetNMS plugin's IPluginV3 interface exists from 10.0
        (NvInferRuntime.h)."""
        return (
            self.version.major,
            self.version.minor,
        ) >= MIN_SUPPORTED and self.version.major <= 11

    @property
    def strongly_typed_flag(self) -> bool:
        """10.x needs NetworkDefinitionCreationFlag.STRONGLY_TYPED; 11.0 made every network
        strongly typed and deprecated the flag (pyCore.cpp v11.0: "Deprecated: always enabled")."""
        return self.version.major < 11

    @property
    def explicit_batch_enum(self) -> bool:
        """EXPLICIT_BATCH is in the 10.x Python enum (ignored since 10.0) and gone in 11.0."""
        return self.version.major < 11

    @property
    def weak_typing_flags(self) -> bool:
        """BuilderFlag.FP16 / INT8 / OBEY_PRECISION_CONSTRAINTS exist up to 10.x; removed in
        11.0."""
        return self.version.major < 11

    @property
    def weak_typing_deprecated(self) -> bool:
        """10.12 deprecated the precision builder flags in favour of strong typing."""
        return self.version.at_least(10, 12)

    @property
    def device_memory_size_v2(self) -> bool:
        """ICudaEngine.device_memory_size_v2 exists from 10.1; device_memory_size is removed in
        11.0."""
        return self.version.at_least(10, 1)

    @property
    def plugin_over_local_function(self) -> bool:
        """From 10.7 the ONNX parser prefers a registered plugin over a local function of the
        same name (TensorRT 10.7.0 release notes, parser changes)."""
        return self.version.at_least(10, 7)

    @property
    def domain_as_plugin_namespace(self) -> bool:
        """From 10.10 the parser's plugin fallback also reads the namespace from the node's
        domain (10.10.0 changelog); before that only the plugin_namespace attribute counts."""
        return self.version.at_least(10, 10)

    @property
    def same_compute_capability_level(self) -> bool:
        """HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY appears in 10.10 (NvInfer.h)."""
        return self.version.at_least(10, 10)

    @property
    def dla(self) -> str | None:
        """How DLA builds work here: 'legacy' (weak typing + FP16/INT8 flags, 10.x up to 10.7),
        'strongly-typed' (11.4.1+ on Jetson AGX Orin, JetPack 7.2.2), or None (no DLA).

        TensorRT docs "Working with DLA" (11.4.1): 10.7 was the last 10.x release with DLA;
        11.0-11.3 had none; 11.4.0 only on Windows on ARM.
        """
        v = self.version
        if v.major == 10 and not v.at_least(10, 8):
            return "legacy"
        if v.at_least(11, 4, 1):
            return "strongly-typed"
        return None


def parse_compute_capability(text: str | tuple | None) -> tuple[int, int] | None:
    """'8.7' / (8, 7) / '87' -> (8, 7); None stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, (tuple, list)):
        return int(text[0]), int(text[1])
    s = str(text).strip()
    m = re.fullmatch(r"(\d+)\.(\d+)", s) or re.fullmatch(r"(\d)(\d)", s)
    if not m:
        raise InputError(f"'{text}' is not a compute capability (expected e.g. 8.7)")
    return int(m.group(1)), int(m.group(2))
