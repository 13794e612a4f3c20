import numpy as np
import pytest

from edgedet.masks import paste_masks


def test_full_mask_fills_its_box():
    masks = np.ones((1, 28, 28), np.float32)
    out = paste_masks(masks, np.array([[10, 20, 40, 30]], np.float32), (50, 60))
    ys, xs = np.nonzero(out[0])
    assert out.shape == (1, 50, 60) and out.dtype == bool
    # padding by one mask pixel grows the box by 30/28 before rounding: 1 px each side at most
    assert (
        9 <= xs.min() <= 10
        and 40 <= xs.max() <= 42
        and 19 <= ys.min() <= 20
        and 30 <= ys.max() <= 31
    )


def test_half_mask_and_clipping():
    masks = np.zeros((2, 28, 28), np.float32)
    masks[0, :, :14] = 1.0  # left half
    masks[1] = 1.0
    out = paste_masks(masks, np.array([[0, 0, 28, 28], [50, 50, 80, 80]], np.float32), (60, 60))
    left = out[0, 5:20].sum(0)
    assert left[:12].all() and not left[17:].any()
    # clipped at the edge
    assert out[1, 50:, 50:].all() and not out[1, :48].any() and not out[1, :, :48].any()


def test_matches_torchvision_paste():
    torch = pytest.importorskip("torch")
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rng = np.random.default_rng(0)
    masks = rng.random((5, 28, 28)).astype(np.float32)
    boxes = np.array(
        [[3, 4, 30, 50], [10, 10, 11, 12], [0, 0, 63, 47], [40, 5, 70, 20], [-5, -5, 20, 20]],
        np.float32,
    )
    ref = (
        paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (48, 64))[
            :, 0
        ].numpy()
        >= 0.5
    )
    got = paste_masks(masks, boxes, (48, 64))
    assert (ref != got).mean() < 0.01  # bilinear rounding differs on a few boundary pixels at most
