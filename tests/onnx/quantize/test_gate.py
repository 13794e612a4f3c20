"""The accuracy gate: a faithful INT8 model passes `edgedet compare --min-match`, a broken one
fails."""

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from edgedet.cli.main import cli
from edgedet.manifest import read_manifest, write_manifest
from edgedet.onnx.quantize.api import QuantizeOptions, quantize


def break_scales(src, dst, factor=64.0):
    """Multiply every activation Q/DQ scale: values collapse onto a few INT8 levels."""
    m = onnx.load(src)
    weights = {i.name for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    scale_names = {
        n.input[1]
        for n in m.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in weights
    }
    for init in m.graph.initializer:
        if init.name in scale_names:
            init.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name)
            )
    onnx.save(m, dst)
    manifest = read_manifest(src, verify=False)
    manifest.artifact, manifest.created = {}, ""
    write_manifest(dst, manifest)


@pytest.fixture(scope="module")
def int8_pair(tiny_export, calib_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("gate")
    good = d / "good.onnx"
    quantize(
        tiny_export,
        good,
        QuantizeOptions(mode="int8", calib_dir=str(calib_dir), cache_dir=str(d / "c")),
    )
    bad = d / "bad.onnx"
    break_scales(good, bad)
    return good, bad


def compare(a, b, images, *extra):
    return CliRunner().invoke(
        cli, ["compare", str(a), str(b), "--images", str(images), "--min-score", "0.3", *extra]
    )


def test_faithful_int8_passes_the_gate(tiny_export, int8_pair, calib_dir):
    r = compare(tiny_export, int8_pair[0], calib_dir, "--min-match", "0.8")
    assert r.exit_code == 0, r.output
    assert "matched" in r.output and "raw 'scores'" in r.output


def test_broken_quantisation_is_caught(tiny_export, int8_pair, calib_dir, tmp_path):
    js = tmp_path / "r.json"
    r = compare(tiny_export, int8_pair[1], calib_dir, "--min-match", "0.8", "--json", str(js))
    assert r.exit_code == 1 and "parity gate failed" in r.output
    import json

    report = json.loads(js.read_text())
    assert min(report["matched_a"], report["matched_b"]) < 0.8
    assert report["raw"]["scores"]["max_abs"] > 0.01  # the raw tensors show it too
