"""Resize mode, padding and channel order from the manifest (issue 14, class 5), and the refusal of
manifest-less files whose outputs only carry the contract's names (class 8)."""

import numpy as np
import pytest
import tiny_models
from onnx import numpy_helper

import edgedet
from edgedet.errors import InputError, ModelError
from edgedet.manifest import InputInfo, Manifest, read_manifest, write_manifest
from edgedet.preprocess import fit_to_input, letterbox, unletterbox_boxes


def _image(h=60, w=120):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_default_is_the_letterbox_bit_for_bit():
    img = _image(37, 91)
    canvas, info = fit_to_input(img, 64, 64, 114)
    want, want_info = letterbox(img, 64, 64, 114)
    assert np.array_equal(canvas, want) and info == want_info


def test_stretch_fills_the_input_and_maps_boxes_back_per_axis():
    img = _image(60, 120)
    canvas, info = fit_to_input(img, 48, 64, resize="stretch")
    assert canvas.shape == (48, 64, 3) and (info.scale, info.scale_y) == (64 / 120, 48 / 60)
    box = np.array([[8.0, 12.0, 32.0, 40.0]], np.float32)  # input pixels
    np.testing.assert_allclose(unletterbox_boxes(box, info), [[15.0, 15.0, 60.0, 50.0]], rtol=1e-6)


def test_top_left_padding_puts_the_image_in_the_corner():
    img = _image(60, 120)
    canvas, info = fit_to_input(img, 64, 64, 114, padding="top-left")
    assert (info.pad_x, info.pad_y) == (0.0, 0.0)
    assert np.all(canvas[32:] == 114) and not np.all(canvas[:32] == 114)
    centred, _ = fit_to_input(img, 64, 64, 114)
    assert np.array_equal(canvas[:32], centred[16:48])  # same resize, other place
    box = np.array([[0.0, 0.0, 64.0, 32.0]], np.float32)
    np.testing.assert_allclose(unletterbox_boxes(box, info), [[0, 0, 120, 60]], rtol=1e-6)


def test_bgr_reverses_channels():
    img = _image(64, 64)
    rgb, _ = fit_to_input(img, 64, 64)
    bgr, _ = fit_to_input(img, 64, 64, channel_order="BGR")
    assert np.array_equal(bgr, rgb[..., ::-1])
    with pytest.raises(InputError, match="resize 'crop'"):
        fit_to_input(img, 64, 64, resize="crop")


def test_manifest_carries_the_modes_and_old_manifests_default(tmp_path):
    path = tiny_models.save(tiny_models.nms_model(), tmp_path / "m.onnx")
    m = read_manifest(path)
    assert (m.input.resize, m.input.padding, m.input.channel_order) == (
        "letterbox",
        "center",
        "RGB",
    )
    m.input = InputInfo(
        "images", (1, 3, 64, 64), resize="stretch", padding="top-left", channel_order="BGR"
    )
    write_manifest(path, m)
    back = read_manifest(path).input
    assert (back.resize, back.padding, back.channel_order) == ("stretch", "top-left", "BGR")
    d = Manifest.from_dict({**m.to_dict(), "input": {"shape": [1, 3, 64, 64]}}).input
    assert (d.resize, d.padding, d.channel_order) == ("letterbox", "center", "RGB")


def test_manifestless_file_with_normalised_boxes_is_refused_with_the_fix(tmp_path):
    """An SSD-style file whose outputs happen to be named boxes/scores once gave 100 zero-width
    boxes, exit 0."""
    model = tiny_models.raw_model()
    for init in model.graph.initializer:
        if init.name == "boxes_c":
            init.CopyFrom(numpy_helper.from_array(tiny_models.RAW_BOXES[None] / 64.0, "boxes_c"))
    path = tiny_models.save(model, tmp_path / "theirs.onnx", manifest=False)
    det = edgedet.load(path, providers=["cpu"])
    fix = "no manifest.*normalised.*attach-nms .*--boxes boxes --scores scores --normalized"
    with pytest.raises(ModelError, match=fix):
        det(np.full((64, 64, 3), 100, np.uint8))


def test_manifestless_contract_file_still_runs(tmp_path):
    path = tiny_models.save(tiny_models.raw_model(), tmp_path / "raw.onnx", manifest=False)
    dets = edgedet.load(path, providers=["cpu"])(np.full((64, 64, 3), 100, np.uint8))
    assert len(dets) > 0
