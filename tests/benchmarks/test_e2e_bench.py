"""benchmarks/e2e.py's NMS figures for a model with no NMS-free variant (two-stage R-CNN): the host
NMS is timed on the split path's own tensors and must equal the split step, and the "before" figure
runs each node's function body on those same tensors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from two_stage import SIZE, two_stage_model  # noqa: E402

from edgedet.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edgedet.backends.ort_split import HostNMS  # noqa: E402


@pytest.fixture
def two_stage(tmp_path):
    path = tmp_path / "two_stage.onnx"
    onnx.save(two_stage_model(), path)
    backend = OnnxRuntimeBackend(path, edgedet_nms="host")
    det = SimpleNamespace(path=path, backend=backend, input=SimpleNamespace(name="images"))
    x = np.random.default_rng(0).uniform(0.2, 1.0, (1, 3, SIZE, SIZE)).astype(np.float32)
    yield det, x
    backend.close()


def split_store(det, x) -> tuple[dict, list[dict]]:
    """The split path run step by step: the final store, and each NMS step's outputs."""
    split = det.backend.split
    store = {**split.constants, det.input.name: x}
    nms_outputs = []
    for step in split.steps:
        step.run(store)
        if isinstance(step, HostNMS):
            nms_outputs.append({n: store[n].copy() for n in step.outputs if n})
    return store, nms_outputs


def test_host_nms_is_timed_on_the_split_tensors_and_equals_the_step(two_stage):
    from benchmarks.e2e import split_host_nms

    det, x = two_stage
    out = split_host_nms(det, x)
    assert out["same"] is True and out["host_nms"] > 0
    _, nms_outputs = split_store(det, x)
    assert len(nms_outputs) == 2 and int(nms_outputs[-1]["num_dets"][0, 0]) > 0


def test_host_nms_check_fails_when_the_direct_call_differs(two_stage, monkeypatch):
    from benchmarks.e2e import split_host_nms
    from edgedet.nms import host

    real = host.batched_nms

    def shifted(*args, **kwargs):
        res = real(*args, **kwargs)
        res.det_scores[...] += np.float32(0.5)
        return res

    monkeypatch.setattr(host, "batched_nms", shifted)
    det, x = two_stage
    assert split_host_nms(det, x)["same"] is False


def test_function_body_runs_give_the_split_steps_outputs(two_stage):
    """The 'before' figure times ONNX Runtime running each EdgeDetNMS node's function body alone
    on the tensors the host NMS gets: same outputs as the split step, node by node."""
    from benchmarks.e2e import function_body_runs

    det, x = two_stage
    runs = function_body_runs(det, x)
    _, nms_outputs = split_store(det, x)
    assert len(runs) == len(nms_outputs) == 2
    for run, want in zip(runs, nms_outputs):
        got = run()
        assert len(got) == len(want)
        for value, (name, expected) in zip(got, want.items()):
            np.testing.assert_array_equal(value, expected, err_msg=name)
