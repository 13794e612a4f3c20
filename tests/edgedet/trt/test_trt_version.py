import pytest

from edgedet.errors import InputError
from edgedet.trt.version import TRTVersion, parse_compute_capability

VERSIONS = ("10.3.0.30", "10.6.0.26", "10.7.0.23", "10.12.0.36", "11.0.0.114", "11.4.0.106")


@pytest.mark.parametrize(
    "text,want",
    [
        ("10.3.0.30", (10, 3, 0, 30)),
        ("11.4", (11, 4, 0, 0)),
        ("10.12.0", (10, 12, 0, 0)),
        ("10.3.0.30+cuda12.6", (10, 3, 0, 30)),
    ],
)
def test_parse(text, want):
    v = TRTVersion.parse(text)
    assert (v.major, v.minor, v.patch, v.build) == want


@pytest.mark.parametrize("bad", ["", "ten", "10..3", "v10"])
def test_parse_rejects(bad):
    with pytest.raises(InputError, match="not a TensorRT version"):
        TRTVersion.parse(bad)


def test_order_and_same_release():
    assert TRTVersion.parse("10.12") > TRTVersion.parse("10.7.0.23")  # numeric, not string order
    # build unknown on one side
    assert TRTVersion.parse("10.3.0.30").same_release(TRTVersion.parse("10.3.0"))
    assert not TRTVersion.parse("10.3.0.30").same_release(TRTVersion.parse("10.3.0.26"))
    assert str(TRTVersion.parse("11.4")) == "11.4.0"


# version -> (strongly_typed_flag, weak_typing_flags, weak_deprecated, plugin_over_function,
#             domain_namespace, same_cc_level, dla)
MATRIX = {
    "10.3.0.30": (True, True, False, False, False, False, "legacy"),
    "10.6.0.26": (True, True, False, False, False, False, "legacy"),
    "10.7.0.23": (True, True, False, True, False, False, "legacy"),
    "10.12.0.36": (True, True, True, True, True, True, None),
    "11.0.0.114": (False, False, True, True, True, True, None),
    "11.4.0.106": (False, False, True, True, True, True, None),
    "11.4.1": (False, False, True, True, True, True, "strongly-typed"),
}


@pytest.mark.parametrize("version", list(MATRIX))
def test_feature_matrix(version):
    f = TRTVersion.parse(version).features
    got = (
        f.strongly_typed_flag,
        f.weak_typing_flags,
        f.weak_typing_deprecated,
        f.plugin_over_local_function,
        f.domain_as_plugin_namespace,
        f.same_compute_capability_level,
        f.dla,
    )
    assert got == MATRIX[version]
    assert f.supported and f.device_memory_size_v2
    assert f.explicit_batch_enum == (TRTVersion.parse(version).major == 10)


@pytest.mark.parametrize(
    "version,ok",
    [("8.6.1", False), ("10.2", False), ("10.3", True), ("11.9", True), ("12.0", False)],
)
def test_supported_range(version, ok):
    assert TRTVersion.parse(version).features.supported is ok


@pytest.mark.parametrize(
    "text,want",
    [("8.7", (8, 7)), ("87", (8, 7)), ((9, 0), (9, 0)), (None, None), ("12.1", (12, 1))],
)
def test_compute_capability(text, want):
    assert parse_compute_capability(text) == want
