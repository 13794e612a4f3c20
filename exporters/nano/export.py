"""The nano model as an ExportableModel: the registry's 'nano' entry."""

from __future__ import annotations

import torch
from torch import nn

from edgedet.errors import InputError
from edgedet.nms.params import NMSParams
from exporters.base import ExportableModel
from exporters.registry import BuildRequest, register_model

# Deployment defaults; mAP in docs/nano.md is measured with these in the graph.
NANO_NMS = NMSParams(score_threshold=0.05, iou_threshold=0.6, max_output_boxes=100, top_k=1000)


class _Uint8Input(nn.Module):
    """uint8 0..255 input in front of a model that takes 0..1 floats."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        return self.model(images.float() * (1.0 / 255.0))


@register_model(
    "nano",
    family="nano",
    description="edgedet's built-in anchor-free detector (synthetic shapes, 320x320)",
)
def build_exportable(request: BuildRequest) -> ExportableModel:
    from exporters import nano
    from exporters.weights import apply_state_dict, weights_record

    state, imgsz, source = request.state, request.imgsz, request.source
    num_classes, uint8_input = request.num_classes, request.uint8_input
    if num_classes not in (None, len(nano.CLASS_NAMES)):
        raise InputError(
            f"nano has {len(nano.CLASS_NAMES)} classes; --num-classes {num_classes} does not apply"
        )
    model = nano.build_model(weights=None if state is not None else nano.WEIGHTS_PATH)
    if state is not None:
        apply_state_dict(model, state, source.get("weights", "weights"))
    else:
        source = weights_record(nano.WEIGHTS_PATH)
    size = imgsz or nano.INPUT_SIZE
    module = _Uint8Input(model) if uint8_input else model
    return ExportableModel(
        module=module.eval(),
        family="nano",
        name="nano",
        class_names=list(nano.CLASS_NAMES),
        imgsz=(size, size),
        nms=NANO_NMS,
        normalization=getattr(model, "normalization", {"in_graph": True}),
        source=source,
        category_ids=[i + 1 for i in range(len(nano.CLASS_NAMES))],
        reference=None,
        notes={"trained_on": "edgedet synthetic shapes (exporters/nano/synthetic.py)"},
    )
