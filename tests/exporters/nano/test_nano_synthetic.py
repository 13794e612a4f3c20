"""The synthetic dataset: determinism, valid COCO annotations, no torch in the generator."""

import json
import subprocess
import sys

import numpy as np
import pytest

from exporters.nano import CLASS_NAMES, synthetic


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("split")
    synthetic.generate_dataset(out, 6, seed=11)
    return out


def _load(folder):
    return json.loads((folder / "annotations.json").read_text())


def test_same_seed_gives_identical_annotations_and_pixels(split, tmp_path):
    synthetic.generate_dataset(tmp_path, 6, seed=11)
    assert _load(tmp_path) == _load(split)
    for im in _load(split)["images"]:
        assert (tmp_path / "images" / im["file_name"]).read_bytes() == (
            split / "images" / im["file_name"]
        ).read_bytes()


def test_different_seed_differs():
    a, b = synthetic.render_image(11, 0), synthetic.render_image(12, 0)
    assert a[0].shape != b[0].shape or not np.array_equal(a[0], b[0])
    assert a[1] != b[1]


def test_render_image_does_not_depend_on_call_order():
    later = synthetic.render_image(11, 3)
    synthetic.render_image(11, 0)
    again = synthetic.render_image(11, 3)
    assert np.array_equal(later[0], again[0]) and later[1] == again[1]


def test_annotations_are_valid_coco(split):
    gt = _load(split)
    assert [c["id"] for c in gt["categories"]] == list(range(1, len(CLASS_NAMES) + 1))
    assert [c["name"] for c in gt["categories"]] == list(CLASS_NAMES)
    images = {im["id"]: im for im in gt["images"]}
    assert sorted(images) == list(range(1, 7))
    for im in gt["images"]:
        h, w = np.asarray(
            __import__("PIL.Image", fromlist=["Image"]).open(split / "images" / im["file_name"])
        ).shape[:2]
        assert (w, h) == (im["width"], im["height"])
        assert (
            synthetic.MIN_SIDE <= w <= synthetic.MAX_SIDE
            and synthetic.MIN_SIDE <= h <= synthetic.MAX_SIDE
        )
    ids = [a["id"] for a in gt["annotations"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 6
    for a in gt["annotations"]:
        im = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= im["width"] and y + h <= im["height"]
        assert 1 <= a["category_id"] <= len(CLASS_NAMES) and a["iscrowd"] == 0
        assert 0 < a["area"] <= w * h


def test_occlusion_rule_rejects_hiding_more_than_allowed():
    """A placement may leave an earlier object no less than MIN_VISIBLE (70 %) visible."""
    assert synthetic.MIN_VISIBLE == 0.7
    layout = synthetic._Layout(50, 50)
    square = np.ones((20, 20), bool)
    layout.add((10, 10, 30, 30), square)
    assert layout.hides_too_much((10, 10, 30, 30), square)  # fully on top
    assert layout.hides_too_much((23, 10, 43, 30), square)  # covers 7 of 20 columns: 65 % left
    assert not layout.hides_too_much((25, 10, 45, 30), square)  # covers 5 columns: 75 % left
    layout.add((25, 10, 45, 30), square)
    assert layout.count == [15 * 20, 400]


def test_generator_does_not_import_torch():
    code = (
        "import sys, exporters.nano.synthetic; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
