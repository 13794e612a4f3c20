"""Compatibility decisions (manifest vs machine): each kind of mismatch gives its own reason."""

import pytest

from edgedet.errors import CompatibilityError
from edgedet.manifest import TensorRTSection
from edgedet.trt.compat import EngineNeeds, Machine, check, hardware_warnings, require_compatible
from edgedet.trt.version import TRTVersion


def needs(version="10.3.0.30", cc=(8, 7), **kw):
    return EngineNeeds(TRTVersion.parse(version), compute_capability=cc, gpu_name="Orin", **kw)


def here(version="10.3.0.30", cc=(8, 7), flavour="full", gpu="Orin"):
    return Machine(
        TRTVersion.parse(version),
        flavour,
        cc,
        gpu,
        None if cc else "cudaGetDeviceCount: cudaErrorNoDevice",
    )


def test_same_release_same_gpu_is_fine():
    assert check(needs(), here()) == []


@pytest.mark.parametrize("have", ["10.3.0.26", "10.7.0.23", "11.4.0.106", "10.2.0"])
def test_default_plan_needs_the_building_release(have):
    (reason,) = check(needs(), here(have))
    assert (
        "built with TensorRT 10.3.0.30" in reason and f"TensorRT {TRTVersion.parse(have)}" in reason
    )
    assert (
        "loads only in the TensorRT release that built it" in reason and "edgedet build" in reason
    )


def test_lean_runtime_runs_version_compatible_only():
    (reason,) = check(needs("11.4.0.106"), here("11.4.0.106", flavour="lean"))
    assert "lean runtime" in reason and "--version-compatible" in reason
    assert (
        check(needs("11.4.0.106", version_compatible=True), here("11.4.0.106", flavour="lean"))
        == []
    )


@pytest.mark.parametrize(
    "have,ok", [("10.3.0.30", True), ("10.12.0.36", True), ("11.4.0.106", True), ("10.2.0", False)]
)
def test_version_compatible_runs_forward_only(have, ok):
    reasons = check(needs(version_compatible=True), here(have))
    assert (reasons == []) is ok
    if not ok:
        assert "same or a newer TensorRT" in reasons[0]


def test_excluded_lean_runtime_needs_exact_release():
    n = needs(version_compatible=True, exclude_lean_runtime=True)
    assert check(n, here("10.3.0.30")) == []
    (reason,) = check(n, here("10.7.0.23"))
    assert "EXCLUDE_LEAN_RUNTIME" in reason and "exactly TensorRT 10.3.0.30" in reason


def test_compute_capability_mismatch():
    (reason,) = check(needs(cc=(8, 7)), here(cc=(8, 6), gpu="RTX 3060"))
    assert "compute capability 8.7" in reason and "8.6" in reason and "RTX 3060" in reason


def test_ampere_plus_accepts_newer_gpus_only():
    n = needs(cc=(8, 6), hardware_compatibility="AMPERE_PLUS")
    assert check(n, here(cc=(9, 0))) == [] and check(n, here(cc=(8, 0))) == []
    (reason,) = check(n, here(cc=(7, 5)))
    assert "AMPERE_PLUS" in reason


def test_same_compute_capability_level():
    n = needs(cc=(8, 9), hardware_compatibility="SAME_COMPUTE_CAPABILITY")
    assert check(n, here(cc=(8, 9), gpu="L4")) == []
    assert check(n, here(cc=(8, 6)))


def test_no_gpu_is_a_reason():
    (reason,) = check(needs(), here(cc=None))
    assert "no usable NVIDIA GPU" in reason and "cudaErrorNoDevice" in reason


def test_other_device_model_same_cc_warns_only():
    assert check(needs(cc=(8, 6)), here(cc=(8, 6), gpu="RTX 3090")) == []
    (w,) = hardware_warnings(needs(cc=(8, 6)), here(cc=(8, 6), gpu="RTX 3090"))
    assert "Orin" in w and "RTX 3090" in w


def test_all_reasons_in_one_error():
    with pytest.raises(CompatibilityError) as e:
        require_compatible(
            "m.engine", needs(), here("11.4.0.106", cc=None, flavour="lean"), ["plugin X missing"]
        )
    msg = str(e.value)
    assert msg.startswith("m.engine cannot run here: ") and msg.count("; ") >= 2
    assert (
        "lean runtime" in msg and "no usable NVIDIA GPU" in msg and msg.endswith("plugin X missing")
    )
    assert "\n" not in msg


def test_from_manifest_section():
    n = EngineNeeds.from_manifest(
        TensorRTSection.from_dict(
            {
                "version": "10.3.0.30",
                "version_compatible": True,
                "hardware_compatibility_level": "ampere_plus",
                "gpu": {"name": "Orin", "compute_capability": "8.7"},
                "plugins": [{"file": "libp.so", "sha256": "ab", "creators": [{"name": "P"}]}],
            }
        )
    )
    assert (
        n.compute_capability == (8, 7)
        and n.hardware_compatibility == "AMPERE_PLUS"
        and n.version_compatible
    )
    assert n.plugins[0].file == "libp.so" and n.plugins[0].creators[0].version == "1"
