"""torchvision two-stage detectors (Faster / Mask R-CNN) as one fixed-shape graph.

  images -> backbone + FPN -> RPN head -> per-level top-k -> decode, clip, drop tiny boxes
         -> EdgeDetNMS (classes = FPN levels, K1 = post_nms_top_n proposals, zero-padded)
         -> multi-scale RoIAlign (level per RoI computed in graph, one RoiAlign per level,
            masked sum)
         -> box head -> per-class boxes [B, K1, C, 4] + softmax scores (padded proposals masked)
         -> EdgeDetNMS (per-class boxes, background 0) -> contract outputs
  Mask R-CNN adds: RoIAlign on the kept boxes -> mask head -> channel of the detected class
         -> sigmoid -> det_masks [B, K, 28, 28]; the runtime pastes them into the image.

Matches torchvision's forward() step for step (per-level pre-NMS top-k, levels as NMS classes,
min-size filters, thresholds); the differences that remain are measured in
tests/exporters/test_rcnn.py and listed in docs/models.md.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgedet.errors import ExportError, first_line
from edgedet.nms.params import NMSParams
from exporters.base import ExportableModel, Normalize
from exporters.nms_torch import edgedet_nms
from exporters.registry import BuildRequest, register_model
from exporters.torchvision_det import _match_transform, coco_categories

TWO_STAGE = {
    "fasterrcnn_resnet50_fpn": 320,
    "fasterrcnn_resnet50_fpn_v2": 320,
    "fasterrcnn_mobilenet_v3_large_fpn": 320,
    "fasterrcnn_mobilenet_v3_large_320_fpn": 320,
    "maskrcnn_resnet50_fpn": 320,
}


class MultiScaleRoIAlign(nn.Module):
    """FPN RoIAlign with fixed shapes: every level pools every RoI, the RoI's level is kept (eq. 1,
    FPN paper)."""

    def __init__(self, pool, names: list[str], scales: list[float]) -> None:
        super().__init__()
        self.names, self.output_size, self.sampling_ratio = (
            names,
            pool.output_size,
            pool.sampling_ratio,
        )
        self.scales = scales
        self.k_min, self.k_max = -math.log2(scales[0]), -math.log2(scales[-1])

    def forward(self, feats: dict, boxes: torch.Tensor) -> torch.Tensor:
        """boxes [B, R, 4] xyxy input pixels -> pooled [B*R, C, S, S]."""
        from torchvision.ops import roi_align

        b, r = boxes.shape[:2]
        flat = boxes.reshape(-1, 4)
        idx = (
            torch.arange(b, dtype=boxes.dtype, device=boxes.device)
            .repeat_interleave(r)
            .unsqueeze(1)
        )
        rois = torch.cat([idx, flat], 1)
        size = torch.sqrt((flat[:, 2] - flat[:, 0]) * (flat[:, 3] - flat[:, 1]))
        level = (
            torch.floor(4 + torch.log2(size / 224) + 1e-6).clamp(self.k_min, self.k_max)
            - self.k_min
        )
        out = 0
        for i, (name, scale) in enumerate(zip(self.names, self.scales)):
            pooled = roi_align(
                feats[name], rois, self.output_size, scale, self.sampling_ratio, aligned=False
            )
            out = out + pooled * (level == i).to(pooled.dtype).view(-1, 1, 1, 1)
        return out


class TwoStageDetector(nn.Module):
    """torchvision Faster/Mask R-CNN -> contract NMS outputs (+ det_masks)."""

    def __init__(self, model: nn.Module, imgsz: int, uint8_input: bool = False) -> None:
        super().__init__()
        self.model, self.size = model.eval(), imgsz
        t = model.transform
        self.normalize = Normalize(t.image_mean, t.image_std, uint8_input)
        self.masks = getattr(model.roi_heads, "mask_head", None) is not None
        self._setup()

    @torch.no_grad()
    def _setup(self) -> None:
        from torchvision.models.detection.image_list import ImageList

        dummy = torch.zeros(1, 3, self.size, self.size)
        feats = self.model.backbone(dummy)
        levels = list(feats.values())
        anchors = self.model.rpn.anchor_generator(
            ImageList(dummy, [(self.size, self.size)]), levels
        )[0]
        self.register_buffer("anchors", anchors, persistent=False)
        counts = [
            f.shape[2] * f.shape[3] * self.model.rpn.head.cls_logits.out_channels for f in levels
        ]
        self.level_counts = counts
        rpn = self.model.rpn
        self.pre_nms = [min(rpn._pre_nms_top_n["testing"], n) for n in counts]
        # as torchvision filters
        names = [n for n in self.model.roi_heads.box_roi_pool.featmap_names if n in feats]
        scales = [2.0 ** round(math.log2(feats[n].shape[-1] / self.size)) for n in names]
        self.box_pool = MultiScaleRoIAlign(self.model.roi_heads.box_roi_pool, names, scales)
        if self.masks:
            self.mask_pool = MultiScaleRoIAlign(self.model.roi_heads.mask_roi_pool, names, scales)
        self.rpn_nms = NMSParams(
            score_threshold=max(rpn.score_thresh, 0.0),
            iou_threshold=rpn.nms_thresh,
            max_output_boxes=rpn._post_nms_top_n["testing"],
            top_k=0,
        )
        rh = self.model.roi_heads
        self.box_nms = NMSParams(
            score_threshold=rh.score_thresh,
            iou_threshold=rh.nms_thresh,
            max_output_boxes=rh.detections_per_img,
            top_k=4096,
            background_class=0,
        )

    def proposals(self, feats: dict, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """RPN: -> proposals [B, K1, 4] (zero rows past the count), valid [B, K1] bool."""
        from torchvision.models.detection.rpn import concat_box_prediction_layers

        levels = list(feats.values())
        obj, deltas = self.model.rpn.head(levels)
        obj, deltas = concat_box_prediction_layers(obj, deltas)  # [B*N, 1], [B*N, 4]
        obj, deltas = obj.reshape(batch, -1), deltas.reshape(batch, -1, 4)
        keep_obj, keep_delta, keep_anchor, keep_level, start = [], [], [], [], 0
        for level, (count, k) in enumerate(zip(self.level_counts, self.pre_nms)):
            o = obj[:, start : start + count]
            top, idx = o.topk(k, dim=1)
            keep_obj.append(top)
            keep_delta.append(
                torch.gather(
                    deltas[:, start : start + count], 1, idx.unsqueeze(-1).expand(-1, -1, 4)
                )
            )
            keep_anchor.append(self.anchors[start : start + count][idx])
            keep_level.append(torch.full_like(top, level))
            start += count
        boxes = self.model.rpn.box_coder.decode_single(
            torch.cat(keep_delta, 1).reshape(-1, 4), torch.cat(keep_anchor, 1).reshape(-1, 4)
        ).reshape(batch, -1, 4)
        boxes = self._clip(boxes)
        prob = torch.sigmoid(torch.cat(keep_obj, 1))
        wh = boxes[..., 2:] - boxes[..., :2]
        prob = torch.where(
            (wh >= self.model.rpn.min_size).all(-1), prob, torch.full_like(prob, -1.0)
        )
        level = torch.cat(keep_level, 1)
        # [B, M, L]
        scores = torch.where(
            level.unsqueeze(-1) == torch.arange(len(self.pre_nms), device=prob.device),
            prob.unsqueeze(-1),
            torch.full_like(prob, -1.0).unsqueeze(-1),
        )
        num, props, _, _ = edgedet_nms(boxes, scores, self.rpn_nms)
        valid = torch.arange(props.shape[1], device=props.device).unsqueeze(0) < num
        return props, valid

    def _clip(self, boxes: torch.Tensor) -> torch.Tensor:
        s = float(self.size)
        return torch.stack(
            [
                boxes[..., 0].clamp(0, s),
                boxes[..., 1].clamp(0, s),
                boxes[..., 2].clamp(0, s),
                boxes[..., 3].clamp(0, s),
            ],
            -1,
        )

    def detect(self, feats: dict, props: torch.Tensor, valid: torch.Tensor):
        rh = self.model.roi_heads
        b, k1 = props.shape[:2]
        x = rh.box_head(self.box_pool(feats, props))
        logits, reg = rh.box_predictor(x)
        classes = logits.shape[-1]
        boxes = self._clip(self._decode_per_class(reg, props, classes))  # [B, K1, C, 4]
        scores = torch.softmax(logits, -1).reshape(b, k1, classes) * valid.unsqueeze(-1).to(
            logits.dtype
        )
        wh = boxes[..., 2:] - boxes[..., :2]
        # remove_small_boxes(1e-2)
        scores = torch.where((wh >= 1e-2).all(-1), scores, torch.zeros_like(scores))
        return edgedet_nms(boxes, scores, self.box_nms)

    def _decode_per_class(
        self, reg: torch.Tensor, props: torch.Tensor, classes: int
    ) -> torch.Tensor:
        b, k1 = props.shape[:2]
        anchors = props.reshape(b * k1, 1, 4).expand(-1, classes, -1).reshape(-1, 4)
        out = self.model.roi_heads.box_coder.decode_single(reg.reshape(-1, 4), anchors)
        return out.reshape(b, k1, classes, 4)

    def forward(self, images: torch.Tensor):
        feats = self.model.backbone(self.normalize(images))
        props, valid = self.proposals(feats, images.shape[0])
        num, boxes, scores, classes = self.detect(feats, props, valid)
        if not self.masks:
            return num, boxes, scores, classes
        return num, boxes, scores, classes, self._masks(feats, boxes, classes)

    def _masks(self, feats: dict, boxes: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        rh = self.model.roi_heads
        b, k = boxes.shape[:2]
        logits = rh.mask_predictor(rh.mask_head(self.mask_pool(feats, boxes)))  # [B*K, C, M, M]
        m = logits.shape[-1]
        idx = classes.reshape(-1, 1, 1, 1).to(torch.int64).expand(-1, 1, m, m)
        return torch.sigmoid(torch.gather(logits, 1, idx)).reshape(b, k, m, m)


@register_model(
    "fasterrcnn_resnet50_fpn",
    family="rcnn",
    nms_in_network=True,
    description="torchvision fasterrcnn_resnet50_fpn (two-stage, NMS inside the network)",
)
@register_model(
    "fasterrcnn_resnet50_fpn_v2",
    family="rcnn",
    nms_in_network=True,
    description="torchvision fasterrcnn_resnet50_fpn_v2 (two-stage, NMS inside the network)",
)
@register_model(
    "fasterrcnn_mobilenet_v3_large_fpn",
    family="rcnn",
    nms_in_network=True,
    description="torchvision fasterrcnn_mobilenet_v3_large_fpn (two-stage, NMS inside the network)",
)
@register_model(
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    family="rcnn",
    nms_in_network=True,
    description=(
        "torchvision fasterrcnn_mobilenet_v3_large_320_fpn (two-stage, NMS inside the network)"
    ),
)
@register_model(
    "maskrcnn_resnet50_fpn",
    family="rcnn",
    nms_in_network=True,
    description="torchvision maskrcnn_resnet50_fpn (two-stage, NMS inside the network)",
)
def build_two_stage(request: BuildRequest, score_threshold: float | None = None) -> ExportableModel:
    """``score_threshold`` overrides the box head's (tests lower it for random weights)."""
    import torchvision.models.detection as tvd

    from exporters.weights import apply_state_dict

    name, state, imgsz = request.name, request.state, request.imgsz
    num_classes, uint8_input, source = request.num_classes, request.uint8_input, request.source
    classes = num_classes or 91
    model = getattr(tvd, name)(weights=None, weights_backbone=None, num_classes=classes).eval()
    if state is not None:
        apply_state_dict(model, state, source.get("weights", "weights"))
    if score_threshold is not None:
        model.roi_heads.score_thresh = score_threshold
    size = imgsz or TWO_STAGE[name]
    _match_transform(model, size)
    try:
        module = TwoStageDetector(model, size, uint8_input).eval()
    except RuntimeError as exc:
        raise ExportError(f"{name} cannot run at --imgsz {size} ({first_line(exc, 120)})") from None
    outputs = ("num_dets", "det_boxes", "det_scores", "det_classes") + (
        ("det_masks",) if module.masks else ()
    )
    t = model.transform
    return ExportableModel(
        module=module,
        family="rcnn",
        name=name,
        class_names=coco_categories() if classes == 91 else [f"class{i}" for i in range(classes)],
        imgsz=(size, size),
        nms=module.box_nms,
        output_names=outputs,
        normalization={"mean": list(t.image_mean), "std": list(t.image_std), "in_graph": True},
        source={**source, "torchvision": name},
        category_ids=list(range(classes)),
        reference=lambda image: _reference(model, image),
        notes={
            "rpn_nms": module.rpn_nms.to_dict(),
            "rpn_pre_nms_top_n": module.pre_nms,
            "nms_in_network": "EdgeDetNMS x2 (RPN proposals, final detections)",
        },
    )


@torch.no_grad()
def _reference(model: nn.Module, image: torch.Tensor) -> dict:
    out = model([image])[0]
    return {k: out[k] for k in ("boxes", "scores", "labels", "masks") if k in out}
