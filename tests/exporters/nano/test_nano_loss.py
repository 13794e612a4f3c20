"""Loss parts against torchvision references; assignment edge cases; a tiny training run."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torchvision.ops import box_iou, complete_box_iou  # noqa: E402

from exporters import nano  # noqa: E402
from exporters.nano.loss import assign, box_iou_aligned, detection_loss  # noqa: E402
from exporters.nano.model import NanoDet  # noqa: E402


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    return torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=g) * 100], 1)


def test_iou_and_ciou_match_torchvision():
    a, b = _boxes(50, 0), _boxes(50, 1)
    torch.testing.assert_close(
        box_iou_aligned(a, b), box_iou(a, b).diagonal(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        box_iou_aligned(a, b, ciou=True), complete_box_iou(a, b).diagonal(), rtol=1e-4, atol=1e-5
    )


def test_assign_gives_every_box_positives_even_tiny_ones():
    model = NanoDet(3)
    n = model.anchor_points.shape[0]
    gt = torch.tensor([[[100.0, 100.0, 160.0, 150.0], [13.0, 13.0, 19.0, 18.0], [0, 0, 0, 0]]])
    labels, mask = torch.tensor([[2, 0, 0]]), torch.tensor([[True, True, False]])
    scores = torch.full((1, n, 3), 0.01)
    boxes = torch.cat([model.anchor_points - 8, model.anchor_points + 8], 1)[None]
    fg, t_boxes, t_scores = assign(
        scores, boxes, model.anchor_points, model.anchor_strides, labels, gt, mask
    )
    assert 1 <= fg.sum() <= 20
    owners = {tuple(b.tolist()) for b in t_boxes[fg]}
    # both boxes, not the padding
    assert owners == {
        tuple(gt[0, 0].tolist()),
        tuple(gt[0, 1].tolist()),
    }
    assert (t_scores[~fg] == 0).all() and (
        t_scores[fg].argmax(-1)
        == labels[0][
            [0 if tuple(b.tolist()) == tuple(gt[0, 0].tolist()) else 1 for b in t_boxes[fg]]
        ]
    ).all()
    assert ((t_scores >= 0) & (t_scores <= 1)).all()


def test_loss_falls_on_a_two_image_batch():
    from exporters.nano import synthetic
    from exporters.nano.train import make_batch

    torch.manual_seed(0)
    targets, images = [], []
    for i in range(2):
        from edgedet.preprocess import letterbox

        rgb, objects = synthetic.render_image(3, i)
        canvas, info = letterbox(rgb, 320, 320, 114)
        t = np.array(
            [
                [
                    o["category_id"] - 1,
                    o["bbox"][0],
                    o["bbox"][1],
                    o["bbox"][0] + o["bbox"][2],
                    o["bbox"][1] + o["bbox"][3],
                ]
                for o in objects
            ],
            np.float32,
        )
        t[:, 1:] = t[:, 1:] * info.scale + np.array([info.pad_x, info.pad_y] * 2, np.float32)
        images.append(canvas)
        targets.append(t)
    batch = make_batch(np.stack(images), targets, [0, 1], None)
    model = NanoDet(len(nano.CLASS_NAMES)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss, _ = detection_loss(model, *model(batch[0]), *batch[1:])
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]  # measured 0.73 after 6 steps


def test_augmented_boxes_follow_the_pixels():
    """Each of the 8 flips/transpositions moves the box exactly where the object's pixels go."""
    from exporters.nano.train import dihedral, make_batch

    canvas = np.zeros((320, 320, 3), np.uint8)
    canvas[40:100, 200:230] = 255  # rows y 40..99, columns x 200..229
    target = np.array([[1, 200, 40, 230, 100]], np.float32)
    for k in range(8):
        img, box = dihedral(canvas, target[:, 1:], k)
        ys, xs = np.nonzero(img[..., 0])
        assert box[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], k
    assert target[0, 1:].tolist() == [200, 40, 230, 100]  # input boxes untouched
    rng = np.random.default_rng(0)
    x, labels, boxes, mask = make_batch(canvas[None], [target], [0] * 8, rng)
    assert (
        x.shape == (8, 3, 320, 320) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    )
    assert labels.tolist() == [[1]] * 8 and mask.all()
    for img, (x1, y1, x2, y2) in zip(x, boxes[:, 0].tolist()):
        inside = img[:, int(y1) : int(y2), int(x1) : int(x2)].mean()
        assert inside > img.mean() + 0.3  # the bright object is inside its box after jitter
