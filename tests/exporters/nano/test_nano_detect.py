"""The shipped weights find the objects in freshly generated validation images."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from exporters import nano  # noqa: E402
from exporters.nano import synthetic  # noqa: E402
from exporters.nano.train import EvalNMS, detect  # noqa: E402


def _iou(a, b):
    """IoU matrix of boxes a [N, 4] and b [M, 4] (x1, y1, x2, y2)."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_shipped_weights_recall_val_objects():
    """Class-aware recall at IoU 0.5, score > 0.3, on 5 val-split images (seed VAL_SEED)."""
    model = nano.build_model()
    found = total = 0
    for index in range(5):
        rgb, objects = synthetic.render_image(synthetic.VAL_SEED, index)
        boxes, scores, classes = detect(model, [rgb], EvalNMS(score_threshold=0.3))[0]
        gt = np.array(
            [[x, y, x + w, y + h] for x, y, w, h in (o["bbox"] for o in objects)], np.float32
        )
        gt_cls = np.array([o["category_id"] - 1 for o in objects])
        iou = _iou(gt, boxes) * (gt_cls[:, None] == classes[None, :])
        found += int((iou.max(1, initial=0) >= 0.5).sum())
        total += len(objects)
    assert total >= 10
    assert found / total >= 0.8, f"recall {found}/{total}"
