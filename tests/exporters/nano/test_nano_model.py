"""NanoDet: size, the raw output contract, decode against a reference, BN folding."""

import pytest

torch = pytest.importorskip("torch")

from exporters import nano  # noqa: E402
from exporters.nano.model import STRIDES, NanoDet  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nano.build_model(weights=None)


def test_parameter_count_is_within_budget(model):
    assert sum(p.numel() for p in model.parameters()) <= 1_500_000


def test_eval_outputs_follow_the_raw_contract(model):
    x = torch.rand(2, 3, nano.INPUT_SIZE, nano.INPUT_SIZE)
    with torch.no_grad():
        boxes, scores = model(x)
    n = sum((nano.INPUT_SIZE // s) ** 2 for s in STRIDES)
    assert n == 2100
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, len(nano.CLASS_NAMES))
    assert boxes.dtype == scores.dtype == torch.float32
    assert torch.isfinite(boxes).all() and ((scores >= 0) & (scores <= 1)).all()
    assert (boxes[..., 2:] >= boxes[..., :2]).all()


def test_decode_matches_reference(model):
    """All DFL mass on bin k puts each side k strides from the anchor point."""
    n, r = model.anchor_points.shape[0], model.reg_max
    k = torch.tensor([1, 2, 3, 4])
    logits = torch.full((1, 4, r, n), -1e4)
    logits[0, torch.arange(4), k, :] = 0
    boxes = model.decode(logits.view(1, 4 * r, n))[0]
    s, p = model.anchor_strides, model.anchor_points
    ref = torch.cat([p - k[:2] * s, p + k[2:] * s], 1)
    torch.testing.assert_close(boxes, ref)
    # first anchor of each level: cell centre (s/2, s/2)
    starts = [0, 1600, 2000]
    assert [tuple(p[i].tolist()) for i in starts] == [(s_ / 2, s_ / 2) for s_ in STRIDES]


def test_fuse_keeps_outputs():
    torch.manual_seed(1)
    model = NanoDet(len(nano.CLASS_NAMES))
    model.train()(torch.rand(4, 3, 320, 320))  # non-trivial BN statistics
    model.eval()
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        ref = model(x)
        fused = model.fuse()(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(ref, fused):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
