"""DeepStream configs: every key nvinfer needs for a detector, values derived from the manifest."""

import configparser

import numpy as np
import pytest
import tiny_models
from click.testing import CliRunner

from edgedet.cli.main import cli
from edgedet.contract import TensorSpec
from edgedet.deploy import open_artifact
from edgedet.deploy.deepstream import (
    PARSER_FUNC,
    PARSER_LIB,
    preprocess_keys,
    run_command,
    write_deepstream,
)
from edgedet.errors import InputError
from edgedet.preprocess import letterbox, to_input

# nvinfer keys a detector config needs (DeepStream Gst-nvinfer docs; the list)
REQUIRED = (
    "labelfile-path",
    "batch-size",
    "network-mode",
    "net-scale-factor",
    "offsets",
    "model-color-format",
    "num-detected-classes",
    "maintain-aspect-ratio",
    "symmetric-padding",
    "parse-bbox-func-name",
    "custom-lib-path",
    "cluster-mode",
    "gie-unique-id",
    "network-type",
)


def read_ini(path):
    ini = configparser.ConfigParser(comment_prefixes=("#",), interpolation=None)
    ini.read_string(path.read_text())
    return ini


def test_onnx_detector_config_has_every_key_with_manifest_values(tiny_nms, tmp_path):
    paths = write_deepstream(tiny_nms, tmp_path / "ds")
    ini = read_ini(tmp_path / "ds" / "config_infer_primary.txt")
    prop = ini["property"]
    assert set(REQUIRED) <= set(prop), set(REQUIRED) - set(prop)
    assert prop["onnx-file"] == "tiny_nms.onnx" and "model-engine-file" not in prop
    m = open_artifact(tiny_nms).manifest
    assert int(prop["num-detected-classes"]) == m.num_classes == 3
    assert int(prop["batch-size"]) == m.input.batch == 1
    assert int(prop["network-mode"]) == 0  # fp32 file
    assert prop["parse-bbox-func-name"] == PARSER_FUNC and prop["cluster-mode"] == "4"
    assert prop["custom-lib-path"].endswith("libnvds_infercustomparser.so")
    assert (prop["maintain-aspect-ratio"], prop["symmetric-padding"]) == ("1", "1")  # letterbox
    assert prop["model-color-format"] == "0"  # RGB
    assert float(ini["class-attrs-all"]["pre-cluster-threshold"]) == m.nms.score_threshold == 0.3
    # every relative path resolves inside the folder, the model sits beside its manifest
    folder = tmp_path / "ds"
    assert (folder / prop["onnx-file"]).is_file() and (folder / "tiny_nms.onnx.json").is_file()
    assert (folder / prop["labelfile-path"]).read_text().splitlines() == tiny_models.CLASS_NAMES
    app = read_ini(folder / "deepstream_app.txt")
    assert (folder / app["primary-gie"]["config-file"]).is_file()
    assert app["streammux"]["batch-size"] == app["primary-gie"]["batch-size"] == prop["batch-size"]
    assert len(paths) == 4


def test_scale_and_offsets_reproduce_the_graph_input(tiny_nms, rgb_image):
    """nvinfer's y = net-scale-factor * (x - offset) on the letterboxed pixels == edgedet's feed."""
    pre = preprocess_keys(open_artifact(tiny_nms).manifest)
    canvas, _ = letterbox(rgb_image, 64, 64)
    ours = to_input([canvas])[0]
    theirs = np.float32(pre.net_scale_factor) * (
        canvas.transpose(2, 0, 1).astype(np.float32) - np.float32(pre.offsets)[:, None, None]
    )
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=0)
    assert ours.max() > 0.5  # a real image, not zeros


def test_normalisation_outside_the_graph_becomes_offsets(tiny_nms, edit_manifest, rgb_image):
    mean, std = [0.485, 0.456, 0.406], [0.25, 0.25, 0.25]
    edit_manifest(
        tiny_nms,
        lambda m: setattr(m, "normalization", {"mean": mean, "std": std, "in_graph": False}),
    )
    pre = preprocess_keys(open_artifact(tiny_nms).manifest)
    x = rgb_image.transpose(2, 0, 1).astype(np.float64)
    want = (x / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    got = pre.net_scale_factor * (x - np.array(pre.offsets)[:, None, None])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    edit_manifest(
        tiny_nms,
        lambda m: setattr(
            m, "normalization", {"mean": mean, "std": [0.2, 0.3, 0.25], "in_graph": False}
        ),
    )
    with pytest.raises(InputError, match="per-channel std"):
        preprocess_keys(open_artifact(tiny_nms).manifest)


def test_stretch_resize_turns_aspect_ratio_off(tiny_nms, edit_manifest):
    edit_manifest(tiny_nms, lambda m: setattr(m.input, "resize", "stretch"))
    pre = preprocess_keys(open_artifact(tiny_nms).manifest)
    assert (pre.maintain_aspect_ratio, pre.symmetric_padding) == (0, 0)


@pytest.mark.parametrize("mode,expected", [("fp16", "2"), ("int8", "1"), ("fp32", "0")])
def test_network_mode_follows_the_files_precision(
    tiny_nms, edit_manifest, tmp_path, mode, expected
):
    edit_manifest(tiny_nms, lambda m: setattr(m, "precision", {"mode": mode}))
    write_deepstream(tiny_nms, tmp_path / "ds")
    assert (
        read_ini(tmp_path / "ds" / "config_infer_primary.txt")["property"]["network-mode"]
        == expected
    )


def test_engine_uses_model_engine_file_and_profile_max(engine_factory, tmp_path):
    # plugin carried inside the plan
    engine = engine_factory(plugins=(True,), version_compatible=True)
    write_deepstream(engine, tmp_path / "ds")
    prop = read_ini(tmp_path / "ds" / "config_infer_primary.txt")["property"]
    assert prop["model-engine-file"] == "model.engine" and "onnx-file" not in prop
    assert prop["batch-size"] == "8" and prop["network-mode"] == "2"
    assert (tmp_path / "ds" / "model.engine").read_bytes() == engine.read_bytes()
    with pytest.raises(InputError, match="profile maximum 8"):
        write_deepstream(engine, tmp_path / "ds2", batch=16)


def test_engine_with_a_plugin_to_load_gets_it_preloaded(engine_factory, tmp_path):
    """nvinfer's custom-lib-path holds the parser library, so the plugin library (which registers
    EdgeDetNMS when dlopen'ed) is preloaded: the command line and both configs say so; a plan
    carrying its plugin needs nothing.
    """
    engine = engine_factory(plugins=(False,))
    write_deepstream(engine, tmp_path / "ds")
    infer = (tmp_path / "ds" / "config_infer_primary.txt").read_text()
    assert "LD_PRELOAD=libedgedet_nms_plugin.so" in infer
    assert (
        read_ini(tmp_path / "ds" / "config_infer_primary.txt")["property"]["custom-lib-path"]
        == PARSER_LIB
    )
    command = run_command(open_artifact(engine))
    assert command == "LD_PRELOAD=libedgedet_nms_plugin.so deepstream-app -c deepstream_app.txt"
    assert (tmp_path / "ds" / "deepstream_app.txt").read_text().startswith(f"# {command}")
    carried = engine_factory(name="vc.engine", plugins=(True,), version_compatible=True)
    assert run_command(open_artifact(carried)) == "deepstream-app -c deepstream_app.txt"


def _reorder(m):
    m.outputs = [m.outputs[1], m.outputs[0], *m.outputs[2:]]


def _masks(m):
    m.outputs = [*m.outputs, TensorSpec("det_masks", "float32", (1, 4, 28, 28))]


def _float_classes(m):
    m.outputs = [*m.outputs[:3], TensorSpec("det_classes", "float32", (1, 4))]


def _classifier(m):  # a consistent classifier manifest (task, output kind and outputs agree)
    m.task, m.output_kind, m.outputs = (
        "classify",
        "classify",
        [TensorSpec("probs", "float32", (1, 4))],
    )


@pytest.mark.parametrize(
    "edit,reason",
    [
        (_reorder, "by position"),
        (_masks, "extra output"),
        (_float_classes, "int32"),
        (lambda m: setattr(m.input, "dtype", "uint8"), "float tensors"),
        (_classifier, "detectors"),
    ],
)
def test_refuses_what_the_parser_cannot_read(tiny_nms, edit_manifest, tmp_path, edit, reason):
    from edgedet.deploy import onnx_outputs

    edit_manifest(tiny_nms, lambda m: (setattr(m, "outputs", onnx_outputs(tiny_nms)), edit(m)))
    with pytest.raises(InputError, match=reason):
        write_deepstream(tiny_nms, tmp_path / "ds")


def test_cli_refuses_raw_model_in_one_line(tiny_raw, tmp_path):
    res = CliRunner().invoke(
        cli, ["deploy", "deepstream", str(tiny_raw), "-o", str(tmp_path / "ds")]
    )
    assert res.exit_code == 2
    assert (
        "raw outputs" in res.output
        and "--nms edgedet" in res.output
        and "Traceback" not in res.output
    )


def test_cli_writes_the_folder(tiny_nms, tmp_path):
    res = CliRunner().invoke(
        cli, ["deploy", "deepstream", str(tiny_nms), "-o", str(tmp_path / "ds")]
    )
    assert res.exit_code == 0, res.output
    assert "deepstream-app -c deepstream_app.txt" in res.output
