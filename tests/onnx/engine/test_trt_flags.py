"""Which TensorRT flags a build gets on each supported version (names only; no TensorRT needed)."""

import pytest

from edgedet.errors import InputError
from edgedet.onnx.engine.flags import (
    BuildOptions,
    parse_size,
    select_flags,
    strip_nms_function,
    validate,
)
from edgedet.trt.version import TRTVersion

V10 = ("10.3.0.30", "10.6.0.26", "10.7.0.23", "10.12.0.36")
V11 = ("11.0.0.114", "11.4.0.106")


def plan(version, **kw):
    return select_flags(TRTVersion.parse(version), BuildOptions(**kw))


@pytest.mark.parametrize("version", V10)
def test_strongly_typed_flag_on_10x(version):
    p = plan(version)
    assert (
        p.network_flags == ("STRONGLY_TYPED",)
        and p.builder_flags == ()
        and p.precision == "strongly-typed"
    )


@pytest.mark.parametrize("version", V11)
def test_11x_is_strongly_typed_without_flags(version):
    p = plan(version)
    assert p.network_flags == () and p.builder_flags == () and p.precision == "strongly-typed"


@pytest.mark.parametrize("version", V10)
@pytest.mark.parametrize("mode,flags", [("fp16", ("FP16",)), ("int8", ("FP16", "INT8"))])
def test_legacy_weak_typing_on_10x(version, mode, flags):
    p = plan(version, legacy=mode)
    assert p.network_flags == () and p.builder_flags == flags and p.precision == f"legacy-{mode}"
    deprecated = any("deprecates" in n for n in p.notes)
    assert deprecated == (version == "10.12.0.36")


@pytest.mark.parametrize("version", V11)
@pytest.mark.parametrize("mode", ["fp16", "int8"])
def test_legacy_refused_on_11(version, mode):
    with pytest.raises(
        InputError, match=f"--legacy-{mode} .*TensorRT 11 removed.*edgedet quantize --{mode}"
    ):
        plan(version, legacy=mode)


@pytest.mark.parametrize("version", V10 + V11)
def test_version_compatible_flags(version):
    assert plan(version, version_compatible=True).builder_flags[-1:] == ("VERSION_COMPATIBLE",)
    p = plan(version, version_compatible=True, exclude_lean_runtime=True)
    assert p.builder_flags[-2:] == ("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME")


def test_exclude_lean_runtime_needs_version_compatible():
    with pytest.raises(InputError, match="only applies to --version-compatible"):
        plan("10.3", exclude_lean_runtime=True)


@pytest.mark.parametrize(
    "version,ok",
    [("10.3.0.30", False), ("10.7.0.23", False), ("10.12.0.36", True), ("11.4.0.106", True)],
)
def test_same_cc_hardware_level_needs_10_10(version, ok):
    if ok:
        assert (
            plan(version, hardware_compatibility="same_cc").hardware_level
            == "SAME_COMPUTE_CAPABILITY"
        )
    else:
        with pytest.raises(InputError, match="needs TensorRT 10.10"):
            plan(version, hardware_compatibility="same_cc")
    assert plan(version, hardware_compatibility="ampere_plus").hardware_level == "AMPERE_PLUS"
    assert plan(version).hardware_level is None


@pytest.mark.parametrize("version", ["10.3.0.30", "10.6.0.26", "10.7.0.23"])
def test_dla_on_jetpack6_needs_legacy_precision(version):
    with pytest.raises(InputError, match="add --legacy-fp16"):
        plan(version, dla_core=0)
    p = plan(version, dla_core=1, legacy="fp16")
    assert p.device_type == "DLA" and p.builder_flags == ("FP16", "GPU_FALLBACK")


@pytest.mark.parametrize("version", ["10.12.0.36", "11.0.0.114", "11.4.0.106"])
def test_dla_absent(version):
    with pytest.raises(InputError, match="no DLA support"):
        plan(version, dla_core=0)


def test_dla_strongly_typed_on_11_4_1():
    p = plan("11.4.1", dla_core=0)
    assert p.device_type == "DLA" and p.builder_flags == ("GPU_FALLBACK",) and p.network_flags == ()
    assert any(
        "GPU fallback" in n
        for n in select_flags(
            TRTVersion.parse("11.4.1"), BuildOptions(dla_core=0), dynamic=True
        ).notes
    )


def test_unsupported_versions():
    for v in ("8.6.1", "10.2.0", "12.0"):
        with pytest.raises(InputError, match="outside the versions edgedet supports"):
            plan(v)


@pytest.mark.parametrize(
    "version,plugin,function,want",
    [
        ("10.3.0.30", True, True, True),
        ("10.6.0.26", True, True, True),
        ("10.7.0.23", True, True, False),
        ("11.4.0.106", True, True, False),
        ("10.3.0.30", False, True, False),
        ("10.3.0.30", True, False, False),
    ],
)
def test_strip_decision(version, plugin, function, want):
    assert strip_nms_function(TRTVersion.parse(version), plugin, function) is want


@pytest.mark.parametrize(
    "text,want",
    [
        ("2G", 2 << 30),
        ("512M", 512 << 20),
        ("1GiB", 1 << 30),
        ("4096", 4096),
        ("1.5g", 3 << 29),
        (None, None),
    ],
)
def test_parse_size(text, want):
    assert parse_size(text) == want


@pytest.mark.parametrize("bad", ["lots", "-1G", "0"])
def test_parse_size_rejects(bad):
    with pytest.raises(InputError, match="--workspace"):
        parse_size(bad)


def test_validate_messages():
    with pytest.raises(InputError, match="--opt-level 7"):
        validate(BuildOptions(opt_level=7))
    with pytest.raises(InputError, match="--dla -1"):
        validate(BuildOptions(dla_core=-1))
    with pytest.raises(InputError, match="--hardware-compat"):
        validate(BuildOptions(hardware_compatibility="any"))


def test_flag_plans_use_the_contract_vocabularies():
    """What the builder writes into the manifest's tensorrt section is a documented value."""
    from edgedet.contract import EnginePrecision, HardwareCompatibility

    precisions = {plan("10.12.0.36", legacy=mode).precision for mode in (None, "fp16", "int8")}
    assert precisions == set(EnginePrecision.values())
    levels = {
        plan("11.4.0.106", hardware_compatibility=h).hardware_level or "NONE"
        for h in ("none", "ampere_plus", "same_cc")
    }
    assert levels == set(HardwareCompatibility.values())


def test_nms_registry_is_the_cli_vocabulary():
    from edgedet.contract import NMS_IMPLEMENTATIONS
    from edgedet.onnx.nms import IMPLEMENTATIONS

    assert tuple(IMPLEMENTATIONS) == NMS_IMPLEMENTATIONS
