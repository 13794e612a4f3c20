"""Real TensorRT: build engines, run them, compare with ONNX Runtime. Marked `trt`.

These run wherever full TensorRT and an NVIDIA GPU exist and skip with the reason elsewhere
(tests/conftest.py). None of them has run in this project yet: no machine here has both.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tiny_models

from edgedet.errors import CompatibilityError
from edgedet.manifest import manifest_path
from edgedet.nms import opdef
from edgedet.onnx.engine.build import build_engine
from edgedet.onnx.engine.flags import BuildOptions
from edgedet.onnx.engine.profiles import BatchRange

pytestmark = pytest.mark.trt
FP16_ATOL = 2e-2  # scores in 0..1; boxes compared with an input-size tolerance below


def _ort(onnx_path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"images": x})))


def _batch(n, size=64, seed=0):
    return np.random.default_rng(seed).random((n, 3, size, size), dtype=np.float32)


@pytest.fixture(scope="module")
def dynamic_engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("trt")
    onnx_path = tiny_models.save(tiny_models.nms_model(batch=None), d / "tiny.onnx", batch=-1)
    result = build_engine(
        onnx_path,
        d / "tiny.engine",
        BuildOptions(batch=BatchRange(1, 2, 4), timing_cache=str(d / "t.cache")),
    )
    return onnx_path, result.path


def test_build_writes_plain_plan_manifest_and_cache(dynamic_engine):
    onnx_path, engine = dynamic_engine
    m = json.loads(manifest_path(engine).read_text())
    t = m["tensorrt"]
    assert t["gpu"]["compute_capability"] and t["profiles"][0][0]["max"] == [4, 3, 64, 64]
    assert m["input"]["shape"][0] == -1 and (engine.parent / "t.cache").stat().st_size > 0
    assert not engine.read_bytes().startswith(b"{")


@pytest.mark.parametrize("n", [1, 3, 4, 6])
def test_engine_matches_onnxruntime_across_batches(dynamic_engine, n):
    from edgedet.backends.tensorrt import TensorRTBackend

    onnx_path, engine = dynamic_engine
    x = _batch(n)
    want = _ort(onnx_path, x)
    with TensorRTBackend(engine) as be:
        got = be.infer({"images": x})
        assert be.last_timings["gpu_compute_ms"] > 0
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, atol=1e-4, err_msg=k)


def test_cuda_graph_gives_the_same_outputs(dynamic_engine):
    from edgedet.backends.tensorrt import TensorRTBackend

    _, engine = dynamic_engine
    x = _batch(3, seed=1)
    with TensorRTBackend(engine) as plain, TensorRTBackend(engine, cuda_graph=True) as graph:
        want, got, again = (
            plain.infer({"images": x}),
            graph.infer({"images": x}),
            graph.infer({"images": x}),
        )
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
        np.testing.assert_array_equal(again[k], want[k])


def test_detector_on_engine_equals_onnx(dynamic_engine, rgb_image):
    import edgedet

    onnx_path, engine = dynamic_engine
    with edgedet.load(engine) as trt_det, edgedet.load(onnx_path, providers=["cpu"]) as ort_det:
        a, b = trt_det(rgb_image), ort_det(rgb_image)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_version_mismatch_is_refused(dynamic_engine, tmp_path):
    import shutil

    from edgedet.backends.tensorrt import TensorRTBackend

    _, engine = dynamic_engine
    copy = tmp_path / engine.name
    shutil.copy(engine, copy)
    m = json.loads(manifest_path(engine).read_text())
    m["tensorrt"]["version"] = "10.2.0.19"  # pretend another release built it
    manifest_path(copy).write_text(json.dumps(m))
    with pytest.raises(CompatibilityError, match="built with TensorRT 10.2.0.19"):
        TensorRTBackend(copy)


def test_inspect_layers(dynamic_engine):
    from edgedet.trt.inspect import inspect_engine

    _, engine = dynamic_engine
    r = inspect_engine(engine, layers=True)
    assert r["can_load_here"] and r["num_layers"] > 0 and r["layers"]


def _nms_plugin() -> str | None:
    from edgedet.trt import plugins
    from edgedet.trt.loader import import_tensorrt

    rec = plugins.PluginRecord(opdef.PLUGIN_LIBRARY)
    found = plugins.resolve(
        rec,
        None,
        [p for p in os.environ.get(plugins.ENV_VAR, "").split(os.pathsep) if p],
        import_tensorrt().version,
    )
    return str(found.path) if found.path else None


def test_nms_plugin_engine_matches_onnxruntime(tmp_path):
    """EdgeDetNMS as plugin in TensorRT vs its local-function body in ONNX Runtime (FP16
    tolerance)."""
    lib = _nms_plugin()
    if lib is None:
        pytest.skip(
            f"{opdef.PLUGIN_LIBRARY} not found: build it with `edgedet plugin build` or set"
            " EDGEDET_PLUGIN_PATH"
        )
    from edgedet.onnx.nms import IMPLEMENTATIONS, attach_nms

    if "edgedet" not in IMPLEMENTATIONS:
        pytest.skip(
            "edgedet.onnx.nms has no 'edgedet' implementation (EdgeDetNMS node + local"
            " function) yet"
        )
    from edgedet.nms.params import NMSParams

    raw = tiny_models.raw_model(batch=None)
    model = attach_nms(
        raw,
        NMSParams(score_threshold=0.05, iou_threshold=0.5, max_output_boxes=4),
        implementation="edgedet",
    )
    onnx_path = tiny_models.save(model, tmp_path / "nms.onnx", batch=-1)
    result = build_engine(
        onnx_path, tmp_path / "nms.engine", BuildOptions(batch=BatchRange(1, 2, 4), plugins=[lib])
    )
    # the parser used the plugin, not the function body
    assert result.manifest.tensorrt.plugin_layers >= 1
    from edgedet.backends.tensorrt import TensorRTBackend

    x = _batch(3, seed=2)
    want = _ort(onnx_path, x)
    with TensorRTBackend(result.path) as be:
        got = be.infer({"images": x})
    np.testing.assert_array_equal(got["num_dets"], want["num_dets"])
    for b in range(3):
        n = int(want["num_dets"][b, 0])
        np.testing.assert_allclose(
            got["det_scores"][b, :n], want["det_scores"][b, :n], atol=FP16_ATOL
        )
        np.testing.assert_allclose(
            got["det_boxes"][b, :n], want["det_boxes"][b, :n], atol=64 * 1e-3
        )
        np.testing.assert_array_equal(got["det_classes"][b, :n], want["det_classes"][b, :n])
