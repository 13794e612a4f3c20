"""Reduced-scale JPEG decoding for the network input (read_image_for_input +
letterbox(source_size)):
the letterbox geometry and box mapping are those of the full decode, only the pixels come from a
1/2..1/8 DCT-scaled decode, which stays at least as large as what the resize step brings the image
to."""

import numpy as np
import pytest
from PIL import Image

import edgedet
from edgedet import preprocess
from edgedet.preprocess import letterbox, read_image, read_image_for_input


def scene(h: int, w: int) -> np.ndarray:
    """Smooth gradients plus a few flat rectangles: JPEG-friendly, with edges to compare."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], -1).astype(np.uint8)
    for i, (fy, fx) in enumerate([(0.2, 0.1), (0.5, 0.6), (0.7, 0.3)]):
        img[int(fy * h) : int(fy * h) + h // 5, int(fx * w) : int(fx * w) + w // 4] = (
            60 * i,
            200,
            255 - 70 * i,
        )
    return img


@pytest.fixture
def big_jpeg(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(scene(1500, 2000)).save(path, quality=92)
    return path


def test_large_jpeg_decodes_reduced_but_letterboxes_as_full(big_jpeg):
    small, size = read_image_for_input(big_jpeg, 320, 320)
    full = read_image(big_jpeg)
    assert size == full.shape[:2] == (1500, 2000)
    # 1/4 scale: the smallest DCT scale keeping both sides >= 320
    assert small.shape == (
        375,
        500,
        3,
    )
    canvas_s, info_s = letterbox(small, 320, 320, source_size=size)
    canvas_f, info_f = letterbox(full, 320, 320)
    assert info_s == info_f  # same scale, padding and original size: boxes map back identically
    diff = np.abs(canvas_s.astype(int) - canvas_f.astype(int))
    # same picture; edges resampled differently
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 40


def test_small_jpeg_and_png_decode_at_full_size(tmp_path, big_jpeg):
    path = tmp_path / "small.jpg"
    Image.fromarray(scene(400, 500)).save(path, quality=92)
    # letterboxed to 320x256; 400 < 2 x 256: no reduction
    rgb, size = read_image_for_input(path, 320, 320)
    np.testing.assert_array_equal(rgb, read_image(path))
    png = tmp_path / "big.png"
    Image.open(big_jpeg).save(png)
    rgb, size = read_image_for_input(png, 320, 320)
    assert rgb.shape[:2] == size == (1500, 2000)


def test_exif_rotation_swaps_the_original_size(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(scene(1500, 2000)).save(path, quality=92, exif=exif)
    full = read_image(path)
    small, size = read_image_for_input(path, 320, 320)
    assert size == full.shape[:2] == (2000, 1500) and small.shape[:2] == (500, 375)
    assert letterbox(small, 320, 320, source_size=size)[1] == letterbox(full, 320, 320)[1]


def test_detector_maps_boxes_to_the_full_size_either_way(tiny_nms, big_jpeg):
    with edgedet.load(tiny_nms) as fast, edgedet.load(tiny_nms, full_decode=True) as full:
        a, b = fast(big_jpeg), full(big_jpeg)
    assert a.image_size == b.image_size == (1500, 2000)
    np.testing.assert_array_equal(a.boxes, b.boxes)  # tiny_nms boxes are fixed in input pixels
    assert a.scores[0] == pytest.approx(b.scores[0], abs=0.01)  # score = mean of the input pixels


def test_jpeg_twice_its_letterboxed_size_decodes_at_that_size(tmp_path):
    """640x480 for a 320 input: the half-scale decode is exactly the letterboxed 320x240, so the
    letterbox only pads; the canvas stays close to full decode + bilinear shrink."""
    path = tmp_path / "vga.jpg"
    Image.fromarray(scene(480, 640)).save(path, quality=92)
    small, size = read_image_for_input(path, 320, 320)
    assert small.shape == (240, 320, 3) and size == (480, 640)
    canvas_s, info_s = letterbox(small, 320, 320, source_size=size)
    canvas_f, info_f = letterbox(read_image(path), 320, 320)
    assert info_s == info_f
    np.testing.assert_array_equal(canvas_s[40:280], small)  # pure padding, no resampling
    diff = np.abs(canvas_s.astype(int) - canvas_f.astype(int))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 40


def test_stretch_needs_the_whole_input_size(tmp_path):
    """A stretched (SSD-style) input needs every input pixel: 640x480 into 320x320 needs 320 rows,
    so no half-scale decode (240 rows); 1280x960 may decode at 640x480."""
    path = tmp_path / "vga.jpg"
    Image.fromarray(scene(480, 640)).save(path, quality=92)
    rgb, _ = read_image_for_input(path, 320, 320, resize="stretch")
    assert rgb.shape == (480, 640, 3)
    big = tmp_path / "big.jpg"
    Image.fromarray(scene(960, 1280)).save(big, quality=92)
    rgb, size = read_image_for_input(big, 320, 320, resize="stretch")
    assert rgb.shape == (480, 640, 3) and size == (960, 1280)


@pytest.mark.parametrize("h, w", [(481, 641), (963, 1283), (3001, 4003)])
def test_odd_sizes_decode_reduced_by_opencv_and_round_up(tmp_path, monkeypatch, h, w):
    """libjpeg rounds reduced sides up (641 / 2 -> 321); the reduced decode keeps its OpenCV path
    and equals Pillow's own reduced decode of the same file."""
    path = tmp_path / "odd.jpg"
    Image.fromarray(scene(h, w)).save(path, quality=90)
    decoded = []
    real = preprocess._decode_jpeg_cv2
    monkeypatch.setattr(
        preprocess, "_decode_jpeg_cv2", lambda *a: decoded.append(real(*a)) or decoded[-1]
    )
    rgb, size = read_image_for_input(path, 320, 320)
    assert len(decoded) == 1 and decoded[0] is rgb  # OpenCV's pixels, not Pillow's fallback
    assert size == (h, w)
    need_w, need_h = 320, round(h * 320 / w)  # letterboxed size
    scale = next(k for k in (8, 4, 2, 1) if k <= min(w // need_w, h // need_h))
    with Image.open(path) as im:
        im.draft("RGB", (need_w, need_h))
        ref = np.asarray(im.convert("RGB"))
    assert scale > 1 and rgb.shape == ref.shape == (-(-h // scale), -(-w // scale), 3)
    np.testing.assert_array_equal(rgb, ref)
