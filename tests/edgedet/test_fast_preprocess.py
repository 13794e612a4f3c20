"""The faster pre-processing keeps the pixels and the input tensor bit for bit:
OpenCV decodes plain JPEGs (Pillow still reads the header, refuses truncated files and handles
everything else), to_input de-interleaves with cv2.split, and Model.predict skips the NaN scan of
an input it built from uint8 pixels."""

import io

import numpy as np
import pytest
from PIL import Image

from edgedet import preprocess
from edgedet.backends.base import IOSpec, check_shape
from edgedet.errors import InputError
from edgedet.preprocess import read_image, read_image_for_input, to_input


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Gradients, flat patches and noise: chroma edges that 4:2:0 upsampling must reproduce
    exactly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x * y) % 256], -1).astype(np.int16)
    img[h // 4 : h // 2, w // 3 : w // 2] = (250, 20, 90)
    img += rng.integers(-20, 21, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def pillow_pixels(path, draft=None) -> np.ndarray:
    """What Pillow alone decodes (the path before OpenCV), with the same DCT scaling request."""
    with Image.open(path) as im:
        if draft:
            im.draft("RGB", draft)
        return np.asarray(im.convert("RGB"))


SAVES = {
    "baseline_420": {"quality": 90},
    "444": {"quality": 95, "subsampling": 0},
    "progressive": {"quality": 85, "progressive": True},
    "low_quality": {"quality": 30},
}


@pytest.mark.parametrize("kind", sorted(SAVES))
@pytest.mark.parametrize("size", [(480, 640), (301, 517)])  # odd sizes: partial MCUs, odd chroma
def test_opencv_decode_is_pillows_pixels(tmp_path, monkeypatch, kind, size):
    path = tmp_path / "p.jpg"
    Image.fromarray(photo_like(*size)).save(path, **SAVES[kind])
    calls = []
    real = preprocess._decode_jpeg_cv2
    monkeypatch.setattr(preprocess, "_decode_jpeg_cv2", lambda *a: calls.append(a) or real(*a))
    out = read_image(path)
    assert calls and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, pillow_pixels(path))


@pytest.mark.parametrize("side,scale", [(640, 2), (320, 4), (160, 8)])
def test_opencv_reduced_decode_is_pillows_draft(tmp_path, side, scale):
    path = tmp_path / "big.jpg"
    Image.fromarray(photo_like(1203, 1601, seed=1)).save(path, quality=90)
    out, size = read_image_for_input(path, side, side)
    # libjpeg rounds the scaled size up
    assert size == (1203, 1601) and out.shape[1] == -(-1601 // scale)
    letterboxed = (side, round(1203 * side / 1601))  # (w, h) inside the padding
    np.testing.assert_array_equal(out, pillow_pixels(path, letterboxed))


def test_opencv_without_rgb_flag_gives_the_same_pixels(tmp_path, monkeypatch):
    """OpenCV < 4.11 has no IMREAD_COLOR_RGB: BGR decode, then an in-place channel swap."""
    path = tmp_path / "p.jpg"
    Image.fromarray(photo_like(120, 200)).save(path, quality=90)
    monkeypatch.setattr(preprocess, "_CV2_RGB", None)
    np.testing.assert_array_equal(read_image(path), pillow_pixels(path))


def test_jpeg_not_ending_in_its_end_marker_is_left_to_pillow(tmp_path):
    """Trailing bytes after the image (camera trailers): Pillow decodes; a cut file: Pillow
    refuses."""
    path = tmp_path / "p.jpg"
    Image.fromarray(photo_like(64, 96)).save(path, quality=90)
    data = path.read_bytes()
    assert preprocess._decode_jpeg_cv2(data + b"TRAILER", 1, (64, 96)) is None
    trailer = tmp_path / "trailer.jpg"
    trailer.write_bytes(data + b"TRAILER")
    np.testing.assert_array_equal(read_image(trailer), pillow_pixels(path))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(cut)


def test_exif_rotated_and_grey_jpegs_and_file_objects_still_decode(tmp_path):
    img = photo_like(60, 90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rotated = tmp_path / "r.jpg"
    Image.fromarray(img).save(rotated, quality=90, exif=exif)
    out = read_image(rotated)
    assert out.shape == (90, 60, 3)
    np.testing.assert_array_equal(out, np.rot90(pillow_pixels(rotated), -1))
    grey = tmp_path / "g.jpg"
    Image.fromarray(img[..., 0]).save(grey, quality=90)
    out = read_image(grey)
    np.testing.assert_array_equal(out, np.repeat(pillow_pixels(grey)[..., :1], 3, axis=2))
    np.testing.assert_array_equal(read_image(io.BytesIO(rotated.read_bytes())), read_image(rotated))


def old_to_input(canvases) -> np.ndarray:
    """to_input before cv2.split: a multiply reading the HWC canvases through a transposed view."""
    batch = np.stack(canvases).transpose(0, 3, 1, 2)
    out = np.empty(batch.shape, np.float32)
    np.multiply(batch, np.float32(1.0 / 255.0), out=out)
    return out


def test_to_input_is_bit_identical_for_contiguous_and_view_canvases():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for canvases in ([a], [a, b], [a[..., ::-1], b], [b[::2, ::2], a[::2, ::2]]):
        np.testing.assert_array_equal(to_input(canvases), old_to_input(canvases))
    with pytest.raises(ValueError, match="differ in shape"):
        to_input([a, b[:10]])


def test_check_values_false_skips_only_the_nan_scan():
    spec = IOSpec("images", np.dtype(np.float32), (1, 3, 4, 4))
    bad = np.full((1, 3, 4, 4), np.nan, np.float32)
    with pytest.raises(InputError, match="NaN"):
        check_shape(spec, bad)
    check_shape(spec, bad, check_values=False)
    with pytest.raises(InputError, match="shape"):
        check_shape(spec, bad[:, :2], check_values=False)
