"""--nms efficient engines need NVIDIA's libnvinfer_plugin registered before parsing (builder) and
before deserialising (runtime). The stand-in module mimics the documented Python call
tensorrt.init_libnvinfer_plugins(logger, namespace) -> bool; no engine is built here."""

from types import SimpleNamespace

import pytest

onnx = pytest.importorskip("onnx")

from edgedet.errors import ExportError  # noqa: E402
from edgedet.nms import NMSParams  # noqa: E402
from edgedet.onnx.engine.build import _nvidia_plugins  # noqa: E402
from edgedet.onnx.nms import attach_nms  # noqa: E402


def fake_trt(result=True, has_init=True):
    calls = []
    module = SimpleNamespace()
    if has_init:
        module.init_libnvinfer_plugins = lambda logger, ns: calls.append((logger, ns)) or result
    return SimpleNamespace(module=module), calls


def raw_model(n, c):
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["b"], ["boxes"]),
            helper.make_node("Identity", ["s"], ["scores"]),
        ],
        "raw",
        [vi("b", TensorProto.FLOAT, [1, n, 4]), vi("s", TensorProto.FLOAT, [1, n, c])],
        [vi("boxes", TensorProto.FLOAT, [1, n, 4]), vi("scores", TensorProto.FLOAT, [1, n, c])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_registered_only_when_the_graph_uses_efficient_nms():
    trt, calls = fake_trt()
    assert _nvidia_plugins(trt, "logger", attach_nms(raw_model(9, 2), NMSParams(), "edgedet")) == []
    assert calls == []
    notes = _nvidia_plugins(trt, "logger", attach_nms(raw_model(9, 2), NMSParams(), "efficient"))
    assert calls == [("logger", "")] and "EfficientNMS_TRT" in notes[0]
    for trt, _ in (fake_trt(result=False), fake_trt(has_init=False)):
        with pytest.raises(ExportError, match="libnvinfer_plugin"):
            _nvidia_plugins(trt, "logger", attach_nms(raw_model(9, 2), NMSParams(), "efficient"))


def test_version_compatible_refuses_efficient_nms_before_tensorrt(tmp_path, monkeypatch):
    """The lean runtime in a version-compatible plan cannot see libnvinfer_plugin: refused with the
    alternative."""
    import edgedet.onnx.engine.build as build_mod
    from edgedet.errors import InputError
    from edgedet.onnx.engine.flags import BuildOptions

    def no_tensorrt(**kw):
        raise AssertionError("TensorRT must not be imported for a refused combination")

    monkeypatch.setattr(build_mod, "import_tensorrt", no_tensorrt)
    # the op is what matters
    monkeypatch.setattr(build_mod, "_load_source", lambda p: (onnx.load(str(p)), None))
    path = tmp_path / "eff.onnx"
    onnx.save(attach_nms(raw_model(9, 2), NMSParams(), "efficient"), str(path))
    with pytest.raises(InputError, match="--version-compatible.*EfficientNMS_TRT.*--nms edgedet"):
        build_mod.build_engine(path, tmp_path / "m.engine", BuildOptions(version_compatible=True))
    assert not (tmp_path / "m.engine").exists()
