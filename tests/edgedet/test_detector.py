import sys

import numpy as np
import pytest
import tiny_models

import edgedet
from edgedet.errors import InputError, ModelError


def test_nms_model_end_to_end(tiny_nms, rgb_image):
    with edgedet.load(tiny_nms, providers=["cpu"]) as det:
        assert det.kind == "nms" and det.input.height == 64
        d = det(rgb_image)
    assert len(d) == 2 and d.image_size == (48, 80)
    assert d.labels == ["circle", "square"]
    # score of the first detection is mean(letterboxed input): a real run, not a constant
    x, _, _ = det.preprocess([rgb_image])
    assert d.scores[0] == pytest.approx(float(x.mean()), rel=1e-5)
    # boxes come back in original pixels: the 80x48 image sits in the 64x64 input at scale 0.8
    # (64x38 pixels, pad_y 13), so input y 8..40 -> (8-13)/0.8 .. (40-13)/0.8, clipped at 0
    np.testing.assert_allclose(d.boxes[0], [10, 0, 50, 33.75], atol=1e-4)
    assert (d.boxes[:, [0, 2]] <= 80).all() and (d.boxes[:, [1, 3]] <= 48).all()


def test_batch_api_with_fixed_batch_model_chunks_and_pads(tiny_nms, rgb_image):
    with edgedet.load(tiny_nms) as det:
        out = det([rgb_image, rgb_image[::-1], rgb_image[:, :40]])
    assert [len(d) for d in out] == [2, 2, 2]
    assert out[2].image_size == (48, 40)


def test_dynamic_batch_model(tmp_path, rgb_image):
    path = tiny_models.save(tiny_models.nms_model(batch=None), tmp_path / "dyn.onnx", batch=-1)
    with edgedet.load(path) as det:
        assert det.backend.inputs[0].shape[0] is None
        out = det.predict([rgb_image] * 5)
    assert len(out) == 5


def test_model_without_manifest_is_inferred(tmp_path, rgb_image):
    path = tiny_models.save(tiny_models.nms_model(), tmp_path / "bare.onnx", manifest=False)
    with edgedet.load(path) as det:
        assert det.manifest.notes["inferred"]
        d = det(rgb_image)
    assert d.labels == ["class0", "class1"]


def test_coco_records_and_drawing(tiny_nms, rgb_image):
    with edgedet.load(tiny_nms) as det:
        d = det(rgb_image)
    recs = d.to_coco(7, det.manifest.category_ids)
    assert recs[0]["image_id"] == 7 and recs[0]["category_id"] == 1 and recs[1]["category_id"] == 2
    x, y, w, h = recs[0]["bbox"]
    assert w > 0 and h > 0
    drawn = d.draw(rgb_image)
    assert drawn.shape == rgb_image.shape and not np.array_equal(drawn, rgb_image)
    assert "circle" in repr(d)


def test_min_score_filter(tiny_nms, rgb_image):
    with edgedet.load(tiny_nms) as det:
        d = det(rgb_image)
        hi = det(rgb_image, min_score=float(d.scores.max()) + 1e-3)
    assert len(hi) == 0


def test_runtime_does_not_import_torch(tiny_nms, tmp_path):
    import subprocess

    code = (
        f"import sys, edgedet; d = edgedet.load(r'{tiny_nms}'); import numpy as np; "
        "d(np.zeros((32, 32, 3), np.uint8)); "
        "print('torch' in sys.modules, 'onnx' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]


def test_wrong_input_shape_and_nan_are_refused(tiny_nms):
    with edgedet.load(tiny_nms) as det:
        with pytest.raises(InputError, match="expects 1x3x64x64"):
            det.infer(np.zeros((1, 3, 32, 32), np.float32))
        with pytest.raises(InputError, match="NaN or Inf"):
            det.infer(np.full((1, 3, 64, 64), np.nan, np.float32))
        with pytest.raises(InputError, match="dtype"):
            det.infer(np.zeros((1, 3, 64, 64), np.float64))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_onnx_is_a_clear_error(tmp_path, damage):
    path = tiny_models.save(tiny_models.nms_model(), tmp_path / "m.onnx", manifest=False)
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 10, "empty": b""}[damage]
    )
    with pytest.raises(ModelError, match="m.onnx"):
        edgedet.load(path)


def test_missing_model_and_unknown_backend(tmp_path, tiny_nms):
    with pytest.raises(InputError, match="does not exist"):
        edgedet.load(tmp_path / "nope.onnx")
    with pytest.raises(InputError, match="unknown backend"):
        edgedet.load(tiny_nms, backend="openvino")
    with pytest.raises(InputError, match="provider 'cuda' is not available"):
        edgedet.load(tiny_nms, providers=["cuda"])
