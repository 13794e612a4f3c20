"""What every model family hands to the export pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from edgedet.nms.params import NMSParams


class Normalize(nn.Module):
    """Input adapter folded into every graph: uint8 or 0..1 RGB -> (x - mean) / std.

    images: [B, 3, H, W] float32 in 0..1, or uint8 in 0..255 when ``uint8_input``.
    """

    def __init__(self, mean, std, uint8_input: bool = False) -> None:
        super().__init__()
        self.uint8_input = uint8_input
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() * (1.0 / 255.0) if self.uint8_input else images
        return (x - self.mean) / self.std


@dataclass
class ExportableModel:
    """A module whose forward maps ``images`` to the raw contract, plus what the manifest needs.

    module.forward(images [B, 3, H, W]) -> (boxes [B, N, 4] xyxy input pixels, scores [B, N, C])
    (or per-class boxes [B, N, C, 4]); for classifiers -> probabilities [B, C].
    """

    module: nn.Module
    family: str
    name: str
    class_names: list[str]
    imgsz: tuple[int, int]
    nms: NMSParams | None
    normalization: dict
    source: dict
    task: str = "detect"
    category_ids: list[int] | None = None  # COCO category id of each class index
    output_names: tuple[str, ...] = ("boxes", "scores")
    # The upstream model's own inference on one letterboxed image [3, H, W] (0..1), returning
    # {"boxes", "scores", "labels"} in input pixels: the parity reference.
    reference: Callable[[torch.Tensor], dict] | None = None
    # With anchors [N, 4] (NMS box_coding), ``boxes`` are anchor-relative deltas decoded inside the
    # NMS (fused decode); families that do this also offer a decode-in-graph module for --nms none.
    anchors: object | None = None
    # An end-to-end head (DETR family): outputs boxes, scores [B, N, C] or [B, N, 1] + labels [B, N]
    # are final; the pipeline adds score threshold + top-k (edgedet/onnx/nms/topk.py), never NMS.
    end_to_end: bool = False
    notes: dict = field(default_factory=dict)
