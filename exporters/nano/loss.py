"""Training loss for NanoDet: task-aligned assignment, quality-aware BCE, CIoU and DFL.

The recipe of TOOD / YOLOv8: each ground truth takes the ``topk`` candidate anchors with the
largest alignment ``score^alpha * IoU^beta``; the classification target of a positive is that
alignment, rescaled so a ground truth's best anchor gets its best IoU (so scores rank boxes
by localisation quality, which is what mAP@0.5:0.95 rewards). Boxes are in input pixels,
(x1, y1, x2, y2), throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

EPS = 1e-9


@dataclass(frozen=True)
class LossConfig:
    topk: int = 10
    alpha: float = 1.0
    beta: float = 6.0
    box_gain: float = 7.5
    cls_gain: float = 0.5
    dfl_gain: float = 1.5


def box_iou_aligned(a: torch.Tensor, b: torch.Tensor, ciou: bool = False) -> torch.Tensor:
    """IoU (or Complete-IoU) of boxes a [..., 4] and b [..., 4] elementwise -> [...]."""
    wa, ha = (a[..., 2] - a[..., 0]).clamp(min=0), (a[..., 3] - a[..., 1]).clamp(min=0)
    wb, hb = (b[..., 2] - b[..., 0]).clamp(min=0), (b[..., 3] - b[..., 1]).clamp(min=0)
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    iou = inter / (wa * ha + wb * hb - inter + EPS)
    if not ciou:
        return iou
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    diag = cw.pow(2) + ch.pow(2) + EPS
    centre = (
        (a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]).pow(2)
        + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]).pow(2)
    ) / 4
    v = (4 / math.pi**2) * (torch.atan(wb / (hb + EPS)) - torch.atan(wa / (ha + EPS))).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + EPS))
    return iou - (centre / diag + v * alpha)


def candidates(
    anchors: torch.Tensor, strides: torch.Tensor, gt_boxes: torch.Tensor
) -> torch.Tensor:
    """Anchors a ground truth may take: centre inside its box, or the finest-level anchor
    nearest its centre (so boxes smaller than a stride-8 cell still get one).

    anchors [N, 2], strides [N, 1], gt_boxes [B, M, 4] -> bool [B, M, N].
    """
    g = gt_boxes[:, :, None, :]
    x, y = anchors[:, 0], anchors[:, 1]
    inside = (x > g[..., 0]) & (x < g[..., 2]) & (y > g[..., 1]) & (y < g[..., 3])
    centre = (g[..., :2] + g[..., 2:]) / 2
    finest = strides[:, 0] == strides.min()
    near = ((anchors - centre).abs() <= strides / 2).all(-1) & finest
    return inside | near


@torch.no_grad()
def assign(
    scores, boxes, anchors, strides, gt_labels, gt_boxes, gt_mask, cfg: LossConfig = LossConfig()
):
    """Task-aligned assignment.

    scores [B, N, C] sigmoid, boxes [B, N, 4] predicted, anchors [N, 2], strides [N, 1],
    gt_labels [B, M] long, gt_boxes [B, M, 4], gt_mask [B, M] bool (padding is False).
    Returns fg [B, N] bool, target boxes [B, N, 4], target scores [B, N, C] (0 for background).
    """
    b, n, c = scores.shape
    cand = candidates(anchors, strides, gt_boxes) & gt_mask[..., None]
    # [B, M, N]
    ious = box_iou_aligned(gt_boxes[:, :, None, :], boxes[:, None, :, :]).clamp(min=0) * cand
    # [B, M, N]
    cls_score = scores.gather(2, gt_labels[:, None, :].expand(b, n, -1)).transpose(1, 2)
    # + EPS * cand: with untrained predictions (all metrics 0) top-k still picks candidates
    metric = cls_score.pow(cfg.alpha) * ious.pow(cfg.beta) * cand + EPS * cand
    top = metric.topk(min(cfg.topk, n), dim=-1).indices
    pos = torch.zeros_like(cand).scatter_(-1, top, True) & cand
    # an anchor claimed by several ground truths goes to the one it overlaps most
    best = F.one_hot(ious.argmax(1), gt_boxes.shape[1]).transpose(1, 2).bool() & cand
    pos = torch.where(pos.sum(1, keepdim=True) > 1, best, pos)
    fg = pos.any(1)
    gt_idx = pos.float().argmax(1)  # [B, N]
    t_labels = gt_labels.gather(1, gt_idx)
    t_boxes = gt_boxes.gather(1, gt_idx[..., None].expand(-1, -1, 4))
    metric = metric * pos
    quality = (
        metric * (ious * pos).amax(-1, keepdim=True) / (metric.amax(-1, keepdim=True) + EPS)
    ).amax(1)
    t_scores = F.one_hot(t_labels, c).float() * (quality * fg)[..., None]
    return fg, t_boxes, t_scores


def dfl_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss. logits [P, 4, R], target distances [P, 4] in bins -> [P]."""
    r = logits.shape[-1]
    target = target.clamp(0, r - 1 - 0.01)
    left = target.long()
    w_left = left + 1 - target
    logp = logits.log_softmax(-1)
    loss = -(
        logp.gather(-1, left[..., None])[..., 0] * w_left
        + logp.gather(-1, (left + 1)[..., None])[..., 0] * (1 - w_left)
    )
    return loss.mean(-1)


def detection_loss(
    model, cls_logits, reg_logits, gt_labels, gt_boxes, gt_mask, cfg: LossConfig = LossConfig()
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts.

    cls_logits [B, N, C], reg_logits [B, N, 4 * R] (the model's train-mode outputs);
    gt_* as in :func:`assign`. Returns (scalar loss, {"box", "cls", "dfl"} floats).
    """
    b, n, _ = cls_logits.shape
    r = model.reg_max
    anchors, strides = model.anchor_points, model.anchor_strides
    dist_logits = reg_logits.view(b, n, 4, r)
    # [B, N, 4] in strides
    dist = dist_logits.softmax(-1) @ torch.arange(r, dtype=dist_logits.dtype)
    boxes = torch.cat([anchors - dist[..., :2] * strides, anchors + dist[..., 2:] * strides], -1)
    fg, t_boxes, t_scores = assign(
        cls_logits.detach().sigmoid(),
        boxes.detach(),
        anchors,
        strides,
        gt_labels,
        gt_boxes,
        gt_mask,
        cfg,
    )
    norm = t_scores.sum().clamp(min=1)
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits, t_scores, reduction="sum") / norm
    loss_box = loss_dfl = cls_logits.new_zeros(())
    if fg.any():
        weight = t_scores.sum(-1)[fg]
        a, s = anchors.expand(b, -1, -1)[fg], strides.expand(b, -1, -1)[fg]
        loss_box = ((1 - box_iou_aligned(boxes[fg], t_boxes[fg], ciou=True)) * weight).sum() / norm
        t = t_boxes[fg]
        t_dist = torch.cat([a - t[:, :2], t[:, 2:] - a], -1) / s
        loss_dfl = (dfl_loss(dist_logits[fg], t_dist) * weight).sum() / norm
    total = cfg.box_gain * loss_box + cfg.cls_gain * loss_cls + cfg.dfl_gain * loss_dfl
    return total, {"box": loss_box.item(), "cls": loss_cls.item(), "dfl": loss_dfl.item()}
