"""torchvision single-stage detectors (SSD, SSDlite, RetinaNet, FCOS) as fixed-shape graphs.

torchvision's own ``forward()`` post-processes with data-dependent Python loops
(per-level / per-class thresholding and top-k) that TensorRT cannot take. These
wrappers keep the network and replace the post-processing by an in-graph decode
to the raw contract (boxes [B, N, 4] xyxy input pixels, scores [B, N, C]);
edgedet's NMS is appended afterwards. Anchors are constants for the export size.

Differences from torchvision's forward() (measured by tests/exporters and the
family benchmark, documented in docs/models.md):
- pre-NMS candidate selection is one global top-k per image instead of per level
  (RetinaNet, FCOS) or per class (SSD);
- the input is letterboxed to --imgsz instead of resized by GeneralizedRCNNTransform.
"""

from __future__ import annotations

import torch
from torch import nn

from edgedet.errors import ExportError, first_line
from edgedet.nms.params import NMSParams
from exporters.base import ExportableModel, Normalize
from exporters.registry import BuildRequest, register_model


class SingleStageDetector(nn.Module):
    """Backbone + head of a torchvision single-stage detector, with decode in graph.

    images [B, 3, H, W] -> boxes [B, N, 4] (x1, y1, x2, y2 input pixels, clipped), scores [B, N, C].
    """

    def __init__(self, model: nn.Module, imgsz: tuple[int, int], uint8_input: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.imgsz = imgsz
        t = model.transform
        self.normalize = Normalize(t.image_mean, t.image_std, uint8_input)
        self.register_buffer("anchors", self._anchors(), persistent=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.model.backbone(x)
        return [feats] if isinstance(feats, torch.Tensor) else list(feats.values())

    @torch.no_grad()
    def _anchors(self) -> torch.Tensor:
        from torchvision.models.detection.image_list import ImageList

        h, w = self.imgsz
        dummy = torch.zeros(1, 3, h, w)
        feats = self.features(dummy)
        return self.model.anchor_generator(ImageList(dummy, [(h, w)]), feats)[0]  # [N, 4] xyxy

    def decode(self, head: dict, batch: int) -> torch.Tensor:
        rel = head["bbox_regression"].reshape(-1, 4)
        anchors = self.anchors.unsqueeze(0).expand(batch, -1, -1).reshape(-1, 4)
        return self.model.box_coder.decode_single(rel, anchors).reshape(batch, -1, 4)

    def activate(self, head: dict) -> torch.Tensor:
        return torch.sigmoid(head["cls_logits"])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.model.head(self.features(self.normalize(images)))
        boxes = self.decode(head, images.shape[0])
        h, w = self.imgsz
        # clip_boxes_to_image, as torchvision's postprocess does
        boxes = torch.stack(
            [
                boxes[..., 0].clamp(0, w),
                boxes[..., 1].clamp(0, h),
                boxes[..., 2].clamp(0, w),
                boxes[..., 3].clamp(0, h),
            ],
            dim=-1,
        )
        return boxes, self.activate(head)


class SSDDetector(SingleStageDetector):
    """SSD / SSDlite: softmax over classes, class 0 is background."""

    def activate(self, head: dict) -> torch.Tensor:
        return torch.softmax(head["cls_logits"], dim=-1)


class FCOSDetector(SingleStageDetector):
    """FCOS: score = sqrt(sigmoid(cls) * sigmoid(centerness)); linear box coder."""

    def decode(self, head: dict, batch: int) -> torch.Tensor:
        return self.model.box_coder.decode(head["bbox_regression"], self.anchors.unsqueeze(0))

    def activate(self, head: dict) -> torch.Tensor:
        return torch.sqrt(torch.sigmoid(head["cls_logits"]) * torch.sigmoid(head["bbox_ctrness"]))


# name -> (torchvision builder, wrapper class, background class, box coder weights for the manifest)
FAMILIES = {
    "ssdlite320_mobilenet_v3_large": ("ssdlite320_mobilenet_v3_large", SSDDetector, "ssd", 0, 320),
    "ssd300_vgg16": ("ssd300_vgg16", SSDDetector, "ssd", 0, 300),
    "retinanet_resnet50_fpn": ("retinanet_resnet50_fpn", SingleStageDetector, "retinanet", -1, 320),
    "retinanet_resnet50_fpn_v2": (
        "retinanet_resnet50_fpn_v2",
        SingleStageDetector,
        "retinanet",
        -1,
        320,
    ),
    "fcos_resnet50_fpn": ("fcos_resnet50_fpn", FCOSDetector, "fcos", -1, 320),
}


def coco_categories() -> list[str]:
    """torchvision's 91 COCO category names (index = COCO category id; '__background__', 'N/A'
    gaps)."""
    from torchvision.models.detection import SSD300_VGG16_Weights

    return list(SSD300_VGG16_Weights.COCO_V1.meta["categories"])


@register_model(
    "ssdlite320_mobilenet_v3_large",
    family="ssd",
    size_multiple=1,
    description="torchvision SSDlite320 MobileNetV3-Large",
)
@register_model(
    "ssd300_vgg16", family="ssd", size_multiple=1, description="torchvision SSD300 VGG16"
)
@register_model(
    "retinanet_resnet50_fpn", family="retinanet", description="torchvision RetinaNet ResNet-50 FPN"
)
@register_model(
    "retinanet_resnet50_fpn_v2",
    family="retinanet",
    description="torchvision RetinaNet ResNet-50 FPN v2",
)
@register_model("fcos_resnet50_fpn", family="fcos", description="torchvision FCOS ResNet-50 FPN")
def build_torchvision(request: BuildRequest) -> ExportableModel:
    """Construct torchvision ``request.name`` (random init unless ``request.state``) and wrap it."""
    import torchvision.models.detection as tvd

    from exporters.weights import apply_state_dict

    name, state, imgsz = request.name, request.state, request.imgsz
    num_classes, uint8_input, source = request.num_classes, request.uint8_input, request.source
    builder, wrapper, family, background, default_size = FAMILIES[name]
    classes = num_classes or 91
    # weights_backbone=None: never download; a user's state_dict carries everything.
    model = getattr(tvd, builder)(weights=None, weights_backbone=None, num_classes=classes).eval()
    if state is not None:
        apply_state_dict(model, state, source.get("weights", "weights"))
    size = imgsz or default_size
    _match_transform(model, size)
    try:
        module = wrapper(model, (size, size), uint8_input).eval()
    except RuntimeError as exc:  # e.g. SSD300's VGG extras collapse below ~270 px
        raise ExportError(
            f"{name} cannot run at --imgsz {size} ({first_line(exc, 120)}); "
            f"use a larger size (default {default_size})"
        ) from None
    names = coco_categories() if classes == 91 else [f"class{i}" for i in range(classes)]
    nms = NMSParams(
        score_threshold=model.score_thresh,
        iou_threshold=model.nms_thresh,
        max_output_boxes=model.detections_per_img,
        top_k=1000,
        background_class=background,
    )
    t = model.transform
    return ExportableModel(
        module=module,
        family=family,
        name=name,
        class_names=names,
        imgsz=(size, size),
        nms=nms,
        normalization={"mean": list(t.image_mean), "std": list(t.image_std), "in_graph": True},
        source={**source, "torchvision": builder},
        category_ids=list(range(classes)),
        reference=lambda image: _reference(model, image),
        notes={
            "postprocess": "global top-k then NMS; torchvision uses per-level/per-class top-k",
            "torchvision_topk_candidates": model.topk_candidates,
        },
    )


def _match_transform(model: nn.Module, size: int) -> None:
    """Make torchvision's own transform a no-op at the export size, so parity compares like with
    like."""
    t = model.transform
    t.min_size, t.max_size = (size,), size
    if getattr(t, "fixed_size", None):
        t.fixed_size = (size, size)


@torch.no_grad()
def _reference(model: nn.Module, image: torch.Tensor) -> dict:
    out = model([image])[0]
    return {"boxes": out["boxes"], "scores": out["scores"], "labels": out["labels"]}
