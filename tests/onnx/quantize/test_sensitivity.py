"""Sensitivity ranking and the accuracy budget on the tiny detector with one deliberately fragile
layer.

The fragile layer: one output channel of ``down.0`` carries a constant +1000 that ``down.2`` ignores
(zero weights), so FP32 is unchanged, but INT8's per-tensor scale on ``down.2``'s input is set by
the outlier and every real activation there rounds to 0 or 1 step. Only falling ``down.2`` back
fixes it.
"""

import json

import numpy as np
import onnx
import pytest

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from click.testing import CliRunner

from edgedet.errors import InputError
from edgedet.manifest import read_manifest
from edgedet.onnx.quantize.api import QuantizeOptions, quantize
from edgedet.onnx.quantize.check import check_qdq
from edgedet.onnx.quantize.sensitivity import dequantize_layers, quantized_layers

FRAGILE = "/down/down.2/Conv"


@pytest.fixture(scope="module")
def fragile_export(tmp_path_factory):
    from tiny_torch import register_tiny

    from exporters.pipeline import ExportOptions, build_exportable, export

    register_tiny()
    em = build_exportable(ExportOptions(model="tiny", nms="none"))
    with torch.no_grad():
        torch.manual_seed(3)
        for p in em.module.parameters():  # a spread of scores so there is something to match
            p.mul_(2.0)
        em.module.down[0].bias[5] = 1000.0
        em.module.down[2].weight[:, 5] = 0.0
    out = tmp_path_factory.mktemp("fragile") / "tiny.onnx"
    export(ExportOptions(model="tiny", nms="none"), out, model=em)
    return out


def make_images(d, n, seed):
    """Structured 64x64 images: a gradient and three coloured blocks."""
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.full((64, 64, 3), rng.integers(0, 120), np.uint8)
        img[:] += np.linspace(0, 100, 64, dtype=np.uint8)[None, :, None]
        for _ in range(3):
            y, x = rng.integers(0, 44, 2)
            h, w = rng.integers(8, 20, 2)
            img[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(d / f"{i:02d}.png")
    return d


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """40 images: enough for a 16-image held-out split and 24 to calibrate."""
    return make_images(tmp_path_factory.mktemp("imgs"), 40, 7)


def opts(images, tmp_path, **kw):
    return QuantizeOptions(
        mode="int8", calib_dir=str(images), cache_dir=str(tmp_path / "c"), min_score=0.3, **kw
    )


def test_fragile_layer_ranks_first_and_alone_falls_back(fragile_export, images, tmp_path, recwarn):
    out, report = tmp_path / "q.onnx", tmp_path / "sens.json"
    res = quantize(
        fragile_export,
        out,
        opts(images, tmp_path, sensitivity=str(report), budget=0.97, sensitivity_mode="exclude"),
    )
    p = res.precision
    # held-out never calibrates
    assert p["holdout"]["images"] == 16 and p["calibration_images"] == 24
    assert p["int8_agreement"]["detections_fp32"] > 16, (
        "nothing to compare: the test would prove nothing"
    )
    assert p["int8_agreement"]["matched"] < 0.8  # the outlier really breaks plain INT8
    ranking = json.loads(report.read_text())["ranking"]
    assert ranking[0]["layer"] == FRAGILE and ranking[0]["matched"] > ranking[1]["matched"]
    b = p["budget"]
    assert b["met"] and b["fallback_layers"] == [FRAGILE] and b["agreement"]["matched"] >= 0.97
    m = onnx.load(out)
    assert (
        check_qdq(m) == [] and FRAGILE not in quantized_layers(m) and len(quantized_layers(m)) >= 3
    )
    assert read_manifest(out).precision["budget"]["fallback_layers"] == [FRAGILE]
    assert read_manifest(out).precision["budget"]["layer_precision"] == {FRAGILE: "fp16"}
    _assert_mixed(m)
    # the budget was measured on the graph written: the same held-out images give the same figure
    assert _matched_on_holdout(fragile_export, out, images) == pytest.approx(
        b["agreement"]["matched"], abs=1e-9
    )


def _assert_mixed(m):
    """INT8 Q/DQ with FP16 scales, the fallen-back layer's weights FP16, the last head convs
    FP32."""
    from edgedet.onnx.tools import opset_of

    inits = {i.name: i.data_type for i in m.graph.initializer}
    nodes = {n.name: n for n in m.graph.node}
    scales = {
        n.input[1] for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
    }
    assert opset_of(m) >= 19 and scales and {inits[s] for s in scales} == {onnx.TensorProto.FLOAT16}
    assert inits[nodes[FRAGILE].input[1]] == onnx.TensorProto.FLOAT16  # FP16 weights, not INT8 ones
    # placement: last head conv FP32
    assert inits[nodes["/cls/Conv"].input[1]] == onnx.TensorProto.FLOAT


def _matched_on_holdout(fp32_path, path, images):
    from edgedet.onnx.quantize.calibration import split_holdout
    from edgedet.onnx.quantize.sensitivity import DetectionProbe, agreement

    man = read_manifest(fp32_path)
    with pytest.warns(UserWarning):
        _, held = split_holdout(images, man.input)
    probe = DetectionProbe(man, list(held.batches()), 0.3)
    return agreement(probe.detections(onnx.load(fp32_path)), probe.detections(onnx.load(path)))[
        "matched"
    ]


def _pseudo_labelled(model_path, folder):
    """A COCO set labelled with the FP32 model's own detections (score >= 0.3), as an annotation
    tool writes it."""
    import edgedet

    man = read_manifest(model_path)
    files = sorted(folder.glob("*.png"))
    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(man.class_names)],
    }
    with edgedet.load(model_path, providers=["cpu"]) as det:
        for i, (f, dets) in enumerate(zip(files, det.predict(files))):
            coco["images"].append({"id": i + 1, "file_name": f.name, "width": 64, "height": 64})
            for r in dets.to_coco(i + 1):
                if r["score"] >= 0.3:
                    coco["annotations"].append(
                        {
                            "id": len(coco["annotations"]) + 1,
                            "image_id": i + 1,
                            "category_id": r["category_id"],
                            "bbox": r["bbox"],
                            "iscrowd": 0,
                            "area": r["bbox"][2] * r["bbox"][3],
                        }
                    )
    path = folder.parent / "annotations.json"  # COCO layout: DIR/annotations.json + DIR/images/
    path.write_text(json.dumps(coco))
    return path, len(coco["annotations"])


def test_budget_map_and_unseen_split(fragile_export, images, tmp_path):
    held = make_images(tmp_path / "held", 24, 9)  # 24: 16 searched, a third (8) kept unseen
    labelled, n_boxes = _pseudo_labelled(
        fragile_export, make_images(tmp_path / "lab" / "images", 12, 11)
    )
    assert n_boxes > 12, "too few labels to measure an mAP drop"
    res = quantize(
        fragile_export,
        tmp_path / "q.onnx",
        opts(images, tmp_path, budget_map=1.0, map_data=str(labelled), holdout_dir=str(held)),
    )
    b = res.precision["budget"]
    assert res.precision["holdout"]["images"] == 16 and b["unseen"]["images"] == 8
    assert 0.0 <= b["unseen"]["matched"] <= 1.0 and b["unseen"]["detections_fp32"] > 0
    # plain INT8 (+FP16) really loses mAP
    assert b["fp32_mAP"] > 0.8 and b["search"][0]["map_drop_pt"] > 5.0
    assert b["met"] and b["map_drop_pt"] <= 1.0 and FRAGILE in b["fallback_layers"]
    assert b["map_images"] == 12 and b["matched_at_iou_0.9"] is None


def test_roundtrip_casts_become_identity():
    from onnx import TensorProto, helper

    from edgedet.onnx.quantize.fp16 import drop_roundtrip_casts

    g = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16, name="c1"),
            helper.make_node("Cast", ["h"], ["f"], to=TensorProto.FLOAT, name="c2"),
            helper.make_node("Relu", ["f"], ["y"], name="r"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    m = helper.make_model(g)
    assert drop_roundtrip_casts(m) == 1
    assert [(n.op_type, list(n.input)) for n in m.graph.node] == [
        ("Identity", ["x"]),
        ("Relu", ["f"]),
    ]
    x = np.array([1.0001, -3.0], np.float32)
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    assert y[0] == np.float32(1.0001)  # not rounded to FP16 (1.0)


def test_alone_mode_also_finds_the_fragile_layer(fragile_export, images, tmp_path):
    report = tmp_path / "alone.json"
    res = quantize(
        fragile_export,
        tmp_path / "q.onnx",
        opts(images, tmp_path, sensitivity=str(report), budget=0.97),
    )
    rows = json.loads(report.read_text())["ranking"]
    assert json.loads(report.read_text())["mode"] == "alone"  # the default
    assert rows[0]["layer"] == FRAGILE and rows[0]["effect"] > 0.2 and rows[-1]["effect"] < 0.1
    assert res.precision["budget"]["fallback_layers"] == [FRAGILE]


def test_dequantize_restores_fp32_weights_and_activation(fragile_export, images, tmp_path):
    quantize(fragile_export, tmp_path / "q.onnx", opts(images, tmp_path))
    q, fp32 = onnx.load(tmp_path / "q.onnx"), onnx.load(fragile_export)
    layers = quantized_layers(q)
    assert FRAGILE in layers
    every = dequantize_layers(q, fp32, layers)
    assert not [n for n in every.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    run = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"images": x}
        )
        for m in (fp32, every)
    ]
    # all layers back: FP32 scores exactly
    np.testing.assert_allclose(run[1][1], run[0][1], atol=1e-5)


def test_budget_cli_and_bad_values(fragile_export, images, tmp_path):
    from edgedet.cli.main import cli

    out = tmp_path / "cli.onnx"
    r = CliRunner().invoke(
        cli,
        [
            "quantize",
            str(fragile_export),
            "--int8",
            "--calib",
            str(images),
            "--budget",
            "0.97",
            "--cache-dir",
            str(tmp_path / "c"),
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "held-out (16 images)" in r.output and FRAGILE in r.output
    with pytest.raises(InputError, match="--budget"):
        quantize(fragile_export, tmp_path / "x.onnx", opts(images, tmp_path, budget=1.5))
    with pytest.raises(InputError, match="--map-data"):
        quantize(fragile_export, tmp_path / "x.onnx", opts(images, tmp_path, budget_map=0.5))
    with pytest.raises(InputError, match="with --int8"):
        quantize(fragile_export, tmp_path / "x.onnx", QuantizeOptions(mode="fp16", budget=0.9))


def test_holdout_too_small_split_is_refused(fragile_export, calib_dir, tmp_path):
    with pytest.raises(InputError, match="too few to hold"):
        quantize(fragile_export, tmp_path / "x.onnx", opts(calib_dir, tmp_path, budget=0.97))
    assert not (tmp_path / "x.onnx").exists()


def test_calibration_unlike_holdout_warns(fragile_export, images, tmp_path):
    from PIL import Image

    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(1)
    for i in range(16):  # saturated colour noise: nothing like the smooth gradients calibrated on
        Image.fromarray(rng.integers(0, 2, (64, 64, 3)).astype(np.uint8) * 255).save(
            noise / f"{i}.png"
        )
    with pytest.warns(UserWarning, match="look unlike the calibration images"):
        res = quantize(
            fragile_export, tmp_path / "n.onnx", opts(images, tmp_path, holdout_dir=str(noise))
        )
    assert res.precision["range_coverage"]["shift_median"] > 0.6
    # a separate held-out folder: all of --calib calibrates
    assert res.precision["calibration_images"] == 40


def test_similar_holdout_does_not_warn(fragile_export, images, tmp_path):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = quantize(
            fragile_export,
            tmp_path / "s.onnx",
            opts(
                images,
                tmp_path,
                sensitivity=None,
                budget=None,
                holdout_dir=str(make_images(tmp_path / "h", 16, 8)),
            ),
        )
    assert not any("look unlike" in str(w.message) for w in caught), str(
        res.precision["range_coverage"]
    )
    assert res.precision["range_coverage"]["shift_median"] < 0.6


def test_split_keeps_holdout_apart(images, tmp_path):
    import shutil

    from edgedet.manifest import InputInfo
    from edgedet.onnx.quantize.calibration import split_holdout

    info = InputInfo("images", (1, 3, 64, 64), "float32")
    with pytest.warns(UserWarning, match="300 or more"):
        calib, held = split_holdout(images, info, size=10)
    assert (
        len(held.files) == 16 and len(calib.files) == 10 and not set(calib.files) & set(held.files)
    )
    copy = tmp_path / "held"
    copy.mkdir()
    for f in sorted(images.iterdir())[:5]:  # the same images under other names: still held out
        shutil.copy(f, copy / f"copy_{f.name}")
    with pytest.warns(UserWarning):
        calib, held = split_holdout(images, info, holdout_dir=copy)
    assert len(held.files) == 5 and len(calib.files) == 35
