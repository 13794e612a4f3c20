"""Triton model repositories: config.pbtxt parses as Triton's ModelConfig and says what the manifest
says."""

import pytest
import tiny_models
from click.testing import CliRunner

from edgedet.cli.main import cli
from edgedet.contract import TensorSpec
from edgedet.deploy import open_artifact
from edgedet.deploy.triton import model_config, parse_config, server_notes, write_triton
from edgedet.errors import InputError

pytest.importorskip("tritonclient")


def load(repo, name):
    return parse_config((repo / name / "config.pbtxt").read_text())


def test_dynamic_batch_onnx_gets_batching_and_dims_without_batch(tmp_path):
    src = tiny_models.save(tiny_models.nms_model(batch=None), tmp_path / "det.onnx", batch=-1)
    write_triton(src, tmp_path / "repo", instances=3, max_batch=16)
    cfg = load(tmp_path / "repo", "det")
    assert cfg.name == "det" and cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size == 16 and cfg.HasField("dynamic_batching")
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(i.count, i.kind) for i in cfg.instance_group] == [(3, 1)]  # KIND_GPU = 1
    assert [(t.name, list(t.dims)) for t in cfg.input] == [("images", [3, 64, 64])]
    assert [(t.name, list(t.dims)) for t in cfg.output] == [
        ("num_dets", [1]),
        ("det_boxes", [4, 4]),
        ("det_scores", [4]),
        ("det_classes", [4]),
    ]
    # TYPE_INT32, TYPE_FP32 (model_config.proto)
    assert [t.data_type for t in cfg.output] == [
        8,
        11,
        11,
        8,
    ]
    assert (tmp_path / "repo/det/1/model.onnx").read_bytes() == src.read_bytes()
    # the manifest stays beside the model
    assert (tmp_path / "repo/det/1/model.onnx.json").is_file()
    assert (tmp_path / "repo/det/labels.txt").read_text().splitlines() == tiny_models.CLASS_NAMES


def test_fixed_batch_model_gets_full_dims_and_no_batching(tiny_nms, tmp_path):
    write_triton(tiny_nms, tmp_path / "repo", name="fixed", kind="cpu")
    cfg = load(tmp_path / "repo", "fixed")
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims) == [1, 3, 64, 64] and list(cfg.output[1].dims) == [1, 4, 4]
    assert cfg.instance_group[0].kind == 2  # KIND_CPU


def test_raw_model_outputs(tiny_raw, tmp_path):
    write_triton(tiny_raw, tmp_path / "repo")
    cfg = load(tmp_path / "repo", "tiny_raw")
    assert [(t.name, list(t.dims)) for t in cfg.output] == [
        ("boxes", [1, 3, 4]),
        ("scores", [1, 3, 3]),
    ]


def test_engine_plan_uses_profile_max_and_version_compatible_flag(engine_factory, tmp_path):
    engine = engine_factory(plugins=(True,), version_compatible=True)
    write_triton(engine, tmp_path / "repo", name="trt")
    cfg = load(tmp_path / "repo", "trt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 8
    assert (tmp_path / "repo/trt/1/model.plan").read_bytes() == engine.read_bytes()
    notes = server_notes(open_artifact(engine), tmp_path / "repo")
    assert "--backend-config=tensorrt,version-compatible=true" in notes and "10.13.0" in notes
    with pytest.raises(InputError, match="profile maximum 8"):
        write_triton(engine, tmp_path / "repo2", max_batch=9)


def test_engine_needing_a_loaded_plugin_gets_the_plugins_flag(engine_factory, tmp_path):
    """The TensorRT backend dlopens --backend-config=tensorrt,plugins= libraries; EdgeDetNMS
    registers at load."""
    engine = engine_factory(plugins=(False,))
    write_triton(engine, tmp_path / "repo", name="trt")
    assert load(tmp_path / "repo", "trt").platform == "tensorrt_plan"
    notes = server_notes(open_artifact(engine), tmp_path / "repo")
    assert '--backend-config=tensorrt,plugins="libedgedet_nms_plugin.so"' in notes
    assert "LD_PRELOAD=libedgedet_nms_plugin.so" in notes and "version-compatible" not in notes


def test_classifier_probs_output_gets_triton_labels(tiny_nms, edit_manifest, tmp_path):
    def classify(m):
        m.task, m.output_kind = "classify", "classify"
        m.outputs = [TensorSpec("probs", "float32", (1, 3))]

    edit_manifest(tiny_nms, classify)
    cfg = parse_config(model_config(open_artifact(tiny_nms), "cls"))
    assert cfg.output[0].name == "probs" and cfg.output[0].label_filename == "labels.txt"


def test_masks_output_is_kept(tiny_nms, edit_manifest):
    from edgedet.deploy import onnx_outputs

    edit_manifest(
        tiny_nms,
        lambda m: setattr(
            m,
            "outputs",
            onnx_outputs(tiny_nms) + [TensorSpec("det_masks", "float32", (1, 4, 28, 28))],
        ),
    )
    cfg = parse_config(model_config(open_artifact(tiny_nms), "mask"))
    assert list(cfg.output[-1].dims) == [1, 4, 28, 28]


def test_parse_config_rejects_what_triton_would(tmp_path):
    with pytest.raises(InputError, match="ModelConfig"):
        parse_config('name: "x"\nmax_batch_size: "eight"\n')
    with pytest.raises(InputError, match="ModelConfig"):
        parse_config('name: "x"\nmax_batch: 8\n')  # unknown field


@pytest.mark.parametrize(
    "bad,match", [({"name": "a b"}, "model name"), ({"instances": 0}, "instances")]
)
def test_bad_options(tiny_nms, bad, match):
    with pytest.raises(InputError, match=match):
        model_config(open_artifact(tiny_nms), **{"name": "ok", **bad})


def test_cli(tiny_nms, tmp_path):
    res = CliRunner().invoke(
        cli, ["deploy", "triton", str(tiny_nms), "-o", str(tmp_path / "repo"), "--instances", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "tritonserver --model-repository=" in res.output
    assert load(tmp_path / "repo", "tiny_nms").instance_group[0].count == 2
    res = CliRunner().invoke(
        cli, ["deploy", "triton", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "r")]
    )
    assert res.exit_code == 2 and "does not exist" in res.output


def test_efficient_nms_onnx_is_refused_for_onnxruntime(tiny_nms, edit_manifest):
    edit_manifest(tiny_nms, lambda m: setattr(m, "nms_implementation", "efficient"))
    with pytest.raises(InputError, match="EfficientNMS_TRT.*edgedet build"):
        model_config(open_artifact(tiny_nms), "eff")
