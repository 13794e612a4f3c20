"""A tiny torch detector (conv + residual Add + Concat + head + in-graph decode) for exporter tests.

Importing this module registers the test-only model 'tiny' (family 'tiny'), as any family module
outside the ``exporters`` package does (docs/models.md, "Adding a model family")."""

from __future__ import annotations

import torch
from torch import nn

from edgedet.nms.params import NMSParams
from exporters.base import ExportableModel
from exporters.registry import BuildRequest, get_model, register_model

CLASSES = ["a", "b", "c"]


class TinyDet(nn.Module):
    """images [B,3,64,64] 0..1 -> boxes [B,64,4] xyxy pixels, scores [B,64,3] (stride 8 grid)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.b1 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
        self.down = nn.Sequential(
            nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU()
        )
        self.box = nn.Conv2d(16, 4, 1)
        self.cls = nn.Conv2d(16, len(CLASSES), 1)
        ys, xs = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
        self.register_buffer(
            "centers", torch.stack([xs, ys], -1).reshape(1, 64, 2).float() * 8 + 4, persistent=False
        )

    def forward(self, images):
        x = self.stem(images - 0.5)
        x = torch.cat([x, x + self.b1(x)], 1)  # residual Add and a Concat, like real backbones
        x = self.down(x)
        b = self.box(x).flatten(2).transpose(1, 2)  # [B, 64, 4]
        wh = torch.exp(b[..., 2:].clamp(max=3)) * 8
        xy = self.centers + torch.tanh(b[..., :2]) * 4
        boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
        scores = torch.sigmoid(self.cls(x).flatten(2).transpose(1, 2) * 4)
        return boxes, scores


@register_model("tiny", family="tiny", description="test-only tiny detector", size_multiple=64)
def build(request: BuildRequest) -> ExportableModel:
    torch.manual_seed(0)
    module = TinyDet().eval()
    if request.state is not None:
        module.load_state_dict(request.state)
    return ExportableModel(
        module=module,
        family="tiny",
        name="tiny",
        class_names=list(CLASSES),
        imgsz=(64, 64),
        nms=NMSParams(score_threshold=0.3, iou_threshold=0.5, max_output_boxes=20, top_k=64),
        normalization={"in_graph": True},
        source=request.source or {"random_init": True},
        category_ids=[1, 2, 3],
    )


def register_tiny():
    """For callers written before the decorator: importing this module registered 'tiny'."""
    return get_model("tiny")
