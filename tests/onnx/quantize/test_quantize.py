import numpy as np
import onnx
import pytest

ort = pytest.importorskip("onnxruntime")

from edgedet.errors import InputError, ModelError  # noqa: E402
from edgedet.manifest import read_manifest  # noqa: E402
from edgedet.onnx.quantize.api import QuantizeOptions, quantize  # noqa: E402
from edgedet.onnx.quantize.check import check_qdq  # noqa: E402


def run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"images": x})))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).random((1, 3, 64, 64), dtype=np.float32)


def test_fp16_keeps_io_and_head_fp32(tiny_export, tmp_path, x):
    out = tmp_path / "m.fp16.onnx"
    res = quantize(tiny_export, out, QuantizeOptions(mode="fp16"))
    m = onnx.load(out)
    assert {i.type.tensor_type.elem_type for i in m.graph.input} == {onnx.TensorProto.FLOAT}
    assert {o.type.tensor_type.elem_type for o in m.graph.output} == {onnx.TensorProto.FLOAT}
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer), (
        "nothing was converted"
    )
    head = {n.name for n in m.graph.node} & set(res.precision["kept_fp32_nodes"])
    assert res.precision["kept_fp32"]["last head convolution"] == 2 and head
    ref, got = run(tiny_export, x), run(out, x)
    np.testing.assert_allclose(got["boxes"], ref["boxes"], atol=0.05)
    np.testing.assert_allclose(got["scores"], ref["scores"], atol=0.01)
    man = read_manifest(out)
    assert man.precision["mode"] == "fp16" and man.source["sha256"]


def test_int8_follows_tensorrt_rules_and_runs(tiny_export, calib_dir, tmp_path, x):
    out = tmp_path / "m.int8.onnx"
    with pytest.warns(UserWarning, match="300 or more"):
        res = quantize(
            tiny_export,
            out,
            QuantizeOptions(mode="int8", calib_dir=str(calib_dir), cache_dir=str(tmp_path / "c")),
        )
    m = onnx.load(out)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") >= 4 and check_qdq(m) == []
    # Q/DQ on both inputs of the residual Add
    dq_out = {n.output[0] for n in m.graph.node if n.op_type == "DequantizeLinear"}
    adds = [
        n
        for n in m.graph.node
        if n.op_type == "Add" and n.name not in res.precision["kept_fp32_nodes"]
    ]
    assert adds and all(all(i in dq_out for i in n.input) for n in adds)
    # the head convolutions were left unquantised: their activation input is not a DQ output
    for n in m.graph.node:
        if n.name in res.precision["kept_fp32_nodes"] and n.op_type == "Conv":
            assert n.input[0] not in dq_out
    ref, got = run(tiny_export, x), run(out, x)
    assert np.abs(got["scores"] - ref["scores"]).max() < 0.2
    assert read_manifest(out).precision["calibration_images"] == 12


def test_int8_is_deterministic_and_caches_ranges(tiny_export, calib_dir, tmp_path):
    opts = dict(mode="int8", calib_dir=str(calib_dir))
    a = quantize(
        tiny_export, tmp_path / "a.onnx", QuantizeOptions(**opts, cache_dir=str(tmp_path / "c1"))
    )
    b = quantize(
        tiny_export, tmp_path / "b.onnx", QuantizeOptions(**opts, cache_dir=str(tmp_path / "c2"))
    )
    c = quantize(
        tiny_export, tmp_path / "c.onnx", QuantizeOptions(**opts, cache_dir=str(tmp_path / "c1"))
    )
    assert (
        not a.precision["cache_hit"] and not b.precision["cache_hit"] and c.precision["cache_hit"]
    )
    assert (
        (tmp_path / "a.onnx").read_bytes()
        == (tmp_path / "b.onnx").read_bytes()
        == (tmp_path / "c.onnx").read_bytes()
    )


def test_cpu_target_uses_ort_cpu_recipe(tiny_export, calib_dir, tmp_path, x):
    out = tmp_path / "cpu.onnx"
    quantize(
        tiny_export,
        out,
        QuantizeOptions(
            mode="int8",
            calib_dir=str(calib_dir),
            target="cpu",
            cache_dir=str(tmp_path),
            speed_check=False,
        ),
    )
    rules = {v.rule for v in check_qdq(onnx.load(out))}
    assert "R4" in rules or "R3" in rules  # uint8 asymmetric: deliberately not for TensorRT
    assert run(out, x)["scores"].shape == (1, 64, 3)


@pytest.mark.parametrize("fp32_ms,int8_ms,written", [(10.0, 8.0, True), (10.0, 12.0, False)])
def test_cpu_target_is_written_only_when_measured_faster(
    tiny_export, calib_dir, tmp_path, monkeypatch, fp32_ms, int8_ms, written
):
    import edgedet.onnx.quantize.api as api

    seen = {}

    def fake_measure(models, input_info, iters):
        seen["models"] = len(models)
        return [fp32_ms, int8_ms]

    monkeypatch.setattr(api, "_measure_cpu", fake_measure)
    out = tmp_path / "cpu.onnx"
    opts = QuantizeOptions(
        mode="int8", calib_dir=str(calib_dir), target="cpu", cache_dir=str(tmp_path)
    )
    if written:
        res = quantize(tiny_export, out, opts)
        assert res.precision["cpu_speed_check"]["speedup"] == pytest.approx(1.25)
    else:
        with pytest.raises(InputError, match="measured slower than FP32"):
            quantize(tiny_export, out, opts)
    assert out.exists() == written and seen["models"] == 2


def test_cpu_speed_measurement_runs_both_models(tiny_export):
    import edgedet.onnx.quantize.api as api
    from edgedet.manifest import read_manifest

    m = onnx.load(tiny_export)
    times = api._measure_cpu((m, m), read_manifest(tiny_export).input, iters=3)
    assert len(times) == 2 and all(t > 0 for t in times)


def test_bad_inputs_are_refused_and_nothing_written(tiny_export, calib_dir, tmp_path):
    out = tmp_path / "o.onnx"
    with pytest.raises(InputError, match="needs --calib"):
        quantize(tiny_export, out, QuantizeOptions(mode="int8"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no images"):
        quantize(tiny_export, out, QuantizeOptions(mode="int8", calib_dir=str(empty)))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"not a jpeg")
    with (
        pytest.warns(UserWarning),
        pytest.raises(InputError, match="none of the 1 calibration images"),
    ):
        quantize(
            tiny_export,
            out,
            QuantizeOptions(mode="int8", calib_dir=str(bad), cache_dir=str(tmp_path / "c")),
        )
    with pytest.raises(InputError, match="matches no node"):
        quantize(tiny_export, out, QuantizeOptions(mode="fp16", exclude=("nothing_like_this*",)))
    assert not out.exists()
    q = tmp_path / "q.onnx"
    quantize(tiny_export, q, QuantizeOptions(mode="fp16"))
    with pytest.raises(InputError, match="already holds FP16"):
        quantize(q, out, QuantizeOptions(mode="fp16"))
    assert not out.exists()


def test_exclude_pattern_keeps_matching_nodes(tiny_export, tmp_path):
    res = quantize(
        tiny_export, tmp_path / "e.onnx", QuantizeOptions(mode="fp16", exclude=("Relu",))
    )
    assert res.precision["kept_fp32"]["--exclude Relu"] >= 3


def test_unrunnable_model_is_named(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Mystery", ["images"], ["boxes"], domain="acme")],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 4])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(
        helper.make_model(
            g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)]
        ),
        path,
    )
    import tiny_models

    tiny_models.save(onnx.load(path), path, kind="raw", size=8)
    with pytest.raises(ModelError, match="Mystery|acme"):
        quantize(path, tmp_path / "o.onnx", QuantizeOptions(mode="fp16"))
