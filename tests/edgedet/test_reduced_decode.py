"""Reduced-scale JPEG decoding for the network input (read_image_for_input +
letterbox(source_size)):
the letterbox geometry and box mapping are those of the full decode, only the pixels come from a
1/2..1/8 DCT-scaled decode, which stays at least as large as the input."""

import numpy as np
import pytest
from PIL import Image

import edgedet
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
    Image.fromarray(scene(480, 640)).save(path, quality=92)
    rgb, size = read_image_for_input(path, 320, 320)  # 480 < 2 x 320: no reduction
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
