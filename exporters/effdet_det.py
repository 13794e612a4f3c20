"""EfficientDet through the optional ``effdet`` package, with anchors decoded in the NMS (fused
decode).

The graph stops at the raw head: ``boxes`` are the anchor-relative deltas reordered to
(tx, ty, tw, th) and ``scores`` are sigmoid probabilities [B, N, C]; the anchors (cx, cy, w, h,
input pixels) travel with the ExportableModel so the NMS step decodes them
(box_coding = centre-size, box_scale 1: w = exp(tw) * wa, cx = tx * wa + xa, as effdet's
decode_box_outputs). With ``--nms none`` the decode is done in the graph instead, so the
raw contract (pixel boxes) holds.

Difference from effdet's own post-processing: edgedet's decode clamps tw/th at log(1000/16)
(torchvision's BoxCoder limit; exp(4.1) = 62x the anchor), effdet does not.
"""

from __future__ import annotations

import torch
from torch import nn

from edgedet.errors import ExportError
from edgedet.nms.params import BOX_CENTER_SIZE, BOX_CORNERS, DEFAULT_BBOX_XFORM_CLIP, NMSParams
from exporters.base import ExportableModel, Normalize
from exporters.registry import BuildRequest, register_model

EFFDET_MODELS = (
    "tf_efficientdet_d0",
    "tf_efficientdet_d1",
    "tf_efficientdet_d2",
    "efficientdet_d0",
    "efficientdet_d1",
)


class EffDetHead(nn.Module):
    """images -> (deltas [B, N, 4] as (tx, ty, tw, th), scores [B, N, C] sigmoid)."""

    def __init__(self, model: nn.Module, mean, std, num_classes: int, uint8_input: bool) -> None:
        super().__init__()
        self.model, self.num_classes = model.eval(), num_classes
        self.normalize = Normalize(mean, std, uint8_input)

    def forward(self, images):
        cls_out, box_out = self.model(self.normalize(images))
        b = images.shape[0]
        cls = torch.cat(
            [c.permute(0, 2, 3, 1).reshape(b, -1, self.num_classes) for c in cls_out], 1
        )
        box = torch.cat([x.permute(0, 2, 3, 1).reshape(b, -1, 4) for x in box_out], 1)
        return box[..., [1, 0, 3, 2]], torch.sigmoid(cls)  # effdet codes are (ty, tx, th, tw)


class DecodedEffDet(nn.Module):
    """EffDetHead + in-graph decode, for ``--nms none`` (pixel boxes, the raw contract)."""

    def __init__(self, head: EffDetHead, anchors_cxcywh: torch.Tensor) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("anchors", anchors_cxcywh, persistent=False)

    def forward(self, images):
        d, scores = self.head(images)
        a = self.anchors
        wh = torch.exp(d[..., 2:].clamp(max=DEFAULT_BBOX_XFORM_CLIP)) * a[:, 2:]
        c = d[..., :2] * a[:, 2:] + a[:, :2]
        return torch.cat([c - wh / 2, c + wh / 2], -1), scores


@register_model(
    "tf_efficientdet_d0",
    family="efficientdet",
    size_multiple=128,
    description="EfficientDet tf_efficientdet_d0 (needs the optional effdet package)",
)
@register_model(
    "tf_efficientdet_d1",
    family="efficientdet",
    size_multiple=128,
    description="EfficientDet tf_efficientdet_d1 (needs the optional effdet package)",
)
@register_model(
    "tf_efficientdet_d2",
    family="efficientdet",
    size_multiple=128,
    description="EfficientDet tf_efficientdet_d2 (needs the optional effdet package)",
)
def build_effdet(request: BuildRequest) -> ExportableModel:
    """Fused decode needs NMS in the graph; for ``--nms none`` the graph decodes the boxes."""
    name, state, imgsz = request.name, request.state, request.imgsz
    num_classes, uint8_input, source = request.num_classes, request.uint8_input, request.source
    decode_in_graph = request.nms == "none"
    try:
        from effdet import create_model, get_efficientdet_config
        from effdet.anchors import Anchors
    except ImportError:
        raise ExportError(
            "EfficientDet needs the optional package 'effdet' (pip install effdet)"
        ) from None
    config = get_efficientdet_config(name)
    if imgsz:
        config.image_size = (imgsz, imgsz)
    classes = num_classes or config.num_classes
    model = create_model(
        name,
        bench_task="",
        pretrained=False,
        pretrained_backbone=False,
        num_classes=classes,
        image_size=config.image_size,
    ).eval()
    if state is not None:
        from exporters.weights import apply_state_dict

        apply_state_dict(model, state, source.get("weights", "weights"))
    yxyx = Anchors.from_config(config).boxes.float()  # [N, 4] (y1, x1, y2, x2) input pixels
    anchors = torch.stack(
        [
            (yxyx[:, 1] + yxyx[:, 3]) / 2,
            (yxyx[:, 0] + yxyx[:, 2]) / 2,
            yxyx[:, 3] - yxyx[:, 1],
            yxyx[:, 2] - yxyx[:, 0],
        ],
        -1,
    )
    # effdet's input pipeline defaults to ImageNet statistics unless the config names its own
    mean = tuple(config.get("mean", None) or (0.485, 0.456, 0.406))
    std = tuple(config.get("std", None) or (0.229, 0.224, 0.225))
    head = EffDetHead(model, mean, std, classes, uint8_input).eval()
    module = DecodedEffDet(head, anchors).eval() if decode_in_graph else head
    h, w = config.image_size
    return ExportableModel(
        module=module,
        family="efficientdet",
        name=name,
        class_names=[f"class{i}" for i in range(classes)],
        imgsz=(h, w),
        nms=NMSParams(
            score_threshold=0.05,
            iou_threshold=0.5,
            max_output_boxes=100,
            top_k=5000,
            # decoded in graph: corners; fused: the NMS decodes centre-size deltas
            box_coding=BOX_CORNERS if decode_in_graph else BOX_CENTER_SIZE,
        ),
        normalization={"mean": list(mean), "std": list(std), "in_graph": True},
        source={**source, "effdet": name},
        category_ids=list(range(1, classes + 1)),
        anchors=None if decode_in_graph else anchors.numpy(),
        notes={"decode": "in graph" if decode_in_graph else "fused in NMS (anchors input)"},
    )
