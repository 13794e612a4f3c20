import numpy as np
import pytest
from PIL import Image

from edgedet.errors import InputError
from edgedet.preprocess import (
    as_rgb8,
    letterbox,
    list_images,
    read_image,
    to_input,
    unletterbox_boxes,
)


@pytest.mark.parametrize("shape", [(48, 80), (80, 48), (64, 64), (10, 300)])
def test_letterbox_maps_boxes_back_exactly(shape):
    h, w = shape
    img = np.zeros((h, w, 3), np.uint8)
    canvas, info = letterbox(img, 64, 64, pad_value=114)
    assert canvas.shape == (64, 64, 3)
    # a box covering the whole original image maps onto the resized region and back
    x1, y1 = info.pad_x, info.pad_y
    box = np.array([[x1, y1, x1 + round(w * info.scale), y1 + round(h * info.scale)]], np.float32)
    back = unletterbox_boxes(box, info)
    np.testing.assert_allclose(back, [[0, 0, w, h]], atol=1.0)
    # padding keeps the pad value, the image region is the image
    if info.pad_y >= 1:
        assert (canvas[0] == 114).all()
    if info.pad_x >= 1:
        assert (canvas[:, 0] == 114).all()


def test_unletterbox_clips_to_image():
    _, info = letterbox(np.zeros((50, 100, 3), np.uint8), 64, 64)
    out = unletterbox_boxes(np.array([[-10, -10, 100, 100]], np.float32), info)
    assert out.min() >= 0 and out[0, 2] <= 100 and out[0, 3] <= 50


def test_to_input_layout_and_dtypes():
    c = np.full((4, 6, 3), 255, np.uint8)
    c[..., 1] = 0
    x = to_input([c, c])
    assert x.shape == (2, 3, 4, 6) and x.dtype == np.float32
    assert x[0, 0].max() == 1.0 and x[0, 1].max() == 0.0
    assert to_input([c], "uint8").dtype == np.uint8


@pytest.mark.parametrize(
    "mode,fmt",
    [
        ("L", "png"),
        ("RGBA", "png"),
        ("P", "png"),
        ("I;16", "png"),
        ("RGB", "jpeg"),
        ("CMYK", "jpeg"),
    ],
)
def test_read_image_converts_odd_kinds_to_rgb8(tmp_path, mode, fmt):
    arr = (np.arange(20 * 30) % 256).reshape(20, 30).astype(np.uint8)
    if mode == "I;16":
        im = Image.fromarray(arr.astype(np.uint16) * 257)
    elif mode in ("L", "P"):
        im = Image.fromarray(arr).convert(mode)
    else:
        im = Image.fromarray(np.stack([arr] * 3, -1)).convert(mode)
    path = tmp_path / f"x.{fmt}"
    im.save(path)
    out = read_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode == "I;16":  # 16-bit is rescaled to 8 bits, not clipped to 255
        assert out.max() == 255 and 0 < out.mean() < 255


@pytest.mark.parametrize("content,match", [(b"", "not an image"), (b"hello", "not an image")])
def test_read_image_rejects_garbage(tmp_path, content, match):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match) as e:
        read_image(p)
    assert "bad.jpg" in str(e.value)


def test_read_image_rejects_truncated_jpeg(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(p)


def test_read_image_missing_and_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_as_rgb8_validates_arrays():
    assert as_rgb8(np.zeros((4, 4), np.uint8)).shape == (4, 4, 3)
    assert as_rgb8(np.ones((4, 4, 3), np.float32)).max() == 255
    assert as_rgb8(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4, 3)
    with pytest.raises(InputError, match="shape"):
        as_rgb8(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        as_rgb8(np.full((4, 4, 3), np.nan, np.float32))


def test_list_images(tmp_path):
    with pytest.raises(InputError, match="holds no images"):
        list_images(tmp_path)
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "a.JPG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
