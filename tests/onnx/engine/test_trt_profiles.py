import pytest

from edgedet.contract import TensorSpec
from edgedet.errors import InputError
from edgedet.onnx.engine.profiles import BatchRange, optimization_profile, parse_batch

DYN = TensorSpec("images", "float32", (-1, 3, 64, 64))
FIXED = TensorSpec("images", "float32", (2, 3, 64, 64))


@pytest.mark.parametrize(
    "text,want",
    [
        ("1,4,8", BatchRange(1, 4, 8)),
        ("8", BatchRange(8, 8, 8)),
        (" 2, 2 ,3", BatchRange(2, 2, 3)),
        (None, None),
        ("", None),
    ],
)
def test_parse_batch(text, want):
    assert parse_batch(text) == want


@pytest.mark.parametrize(
    "bad,match",
    [
        ("a,b,c", "N or min,opt,max"),
        ("1,2", "positive integers"),
        ("0,1,2", "positive"),
        ("4,2,8", "min <= opt <= max"),
        ("1,9,8", "min <= opt"),
    ],
)
def test_parse_batch_errors(bad, match):
    with pytest.raises(InputError, match=match):
        parse_batch(bad)


def test_dynamic_batch_profile():
    shapes, notes = optimization_profile([DYN], BatchRange(1, 4, 8))
    (p,) = shapes
    assert (p.name, p.min, p.opt, p.max) == (
        "images",
        (1, 3, 64, 64),
        (4, 3, 64, 64),
        (8, 3, 64, 64),
    ) and not notes
    assert p.to_dict()["max"] == [8, 3, 64, 64]


def test_dynamic_without_batch_defaults_to_one_with_a_note():
    (p,), (note,) = optimization_profile([DYN], None)
    assert p.min == p.opt == p.max == (1, 3, 64, 64) and "--batch" in note


def test_fixed_batch_needs_no_profile():
    assert optimization_profile([FIXED], None) == ([], [])
    assert optimization_profile([FIXED], BatchRange(2, 2, 2)) == ([], [])
    with pytest.raises(InputError, match="fixed batch of 2.*--dynamic-batch.*--batch 2"):
        optimization_profile([FIXED], BatchRange(1, 2, 4))


def test_dynamic_spatial_dims_refused():
    with pytest.raises(
        InputError, match=r"'images' .*dynamic dimensions \[0, 2, 3\].*fixed H and W"
    ):
        optimization_profile([TensorSpec("images", "float32", (-1, 3, -1, -1))], None)


def test_mixed_inputs_refused():
    with pytest.raises(InputError, match="mix fixed batches"):
        optimization_profile([DYN, TensorSpec("extra", "float32", (1, 4))], None)


THRESHOLDS = [
    TensorSpec("score_threshold", "float32", (1,)),
    TensorSpec("iou_threshold", "float32", (1,)),
]


def test_threshold_inputs_take_no_part_in_the_batch_profile():
    """Run-time thresholds are float32 [1]: not a fixed batch of 1 beside a dynamic image input."""
    shapes, notes = optimization_profile([DYN, *THRESHOLDS], BatchRange(1, 4, 8))
    assert [p.name for p in shapes] == ["images"] and shapes[0].max == (8, 3, 64, 64) and not notes
    (p,), _ = optimization_profile([DYN, *THRESHOLDS], None)
    assert p.max == (1, 3, 64, 64)


def test_fixed_batch_with_threshold_inputs_accepts_its_own_batch():
    fixed4 = TensorSpec("images", "float32", (4, 3, 64, 64))
    assert optimization_profile([fixed4, *THRESHOLDS], BatchRange(4, 4, 4)) == ([], [])
    with pytest.raises(InputError, match="fixed batch of 4"):
        optimization_profile([fixed4, *THRESHOLDS], BatchRange(1, 4, 8))
