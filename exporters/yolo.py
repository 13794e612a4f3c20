"""YOLO-style detectors: a plain PyTorch module + head spec, or an Ultralytics checkpoint.

Plain modules return one raw map per level; the spec says how to read them:
  kind "dfl"     (YOLOv8/11-style, anchor-free): [B, 4*reg_max + C, H, W]; box = distances
                 (left, top, right, bottom) in stride units as the softmax expectation over
                 reg_max bins, around anchor points (col + 0.5, row + 0.5)
  kind "anchor"  (YOLOv5/7-style): [B, A*(5 + C), H, W]; xy = (2*sig - 0.5 + grid) * stride,
                 wh = (2*sig)^2 * anchor, score = sig(obj) * sig(cls)
Both decode in-graph to the raw contract: boxes [B, N, 4] xyxy pixels, scores [B, N, C].

Ultralytics (optional dependency, AGPL-3.0, never vendored): its Detect head already decodes to
[B, 4 + C, N] (cx, cy, w, h pixels + class probabilities); we only transpose and convert.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgedet.errors import ExportError, InputError
from edgedet.nms.params import NMSParams
from exporters.base import ExportableModel
from exporters.registry import BuildRequest, register_model

YOLO_NMS = NMSParams(score_threshold=0.25, iou_threshold=0.45, max_output_boxes=300, top_k=1000)
KINDS = ("dfl", "anchor")


@dataclass(frozen=True)
class YoloHeadSpec:
    kind: str
    num_classes: int
    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 16
    # per level, (w, h) pixels; kind "anchor"
    anchors: tuple[tuple[tuple[float, float], ...], ...] = ()

    def channels(self, level: int) -> int:
        if self.kind == "dfl":
            return 4 * self.reg_max + self.num_classes
        return len(self.anchors[level]) * (5 + self.num_classes)


def check_head(module: nn.Module, spec: YoloHeadSpec, imgsz: int) -> None:
    """Run ``module`` once and name any mismatch between its outputs and ``spec``."""
    if spec.kind not in KINDS:
        raise InputError(f"head kind '{spec.kind}' is not one of {', '.join(KINDS)}")
    if spec.kind == "anchor" and len(spec.anchors) != len(spec.strides):
        raise InputError(
            f"anchor head needs anchors for each of the {len(spec.strides)} strides, got"
            f" {len(spec.anchors)}"
        )
    with torch.no_grad():
        outs = module(torch.zeros(1, 3, imgsz, imgsz))
    if not isinstance(outs, (list, tuple)) or not all(isinstance(o, torch.Tensor) for o in outs):
        raise InputError(
            f"the module returns {type(outs).__name__}; a YOLO head spec needs one raw map per"
            " level"
        )
    if len(outs) != len(spec.strides):
        raise InputError(
            f"the module returns {len(outs)} maps, the spec has {len(spec.strides)} strides"
            f" {spec.strides}"
        )
    for i, (o, s) in enumerate(zip(outs, spec.strides)):
        want = (1, spec.channels(i), imgsz // s, imgsz // s)
        if tuple(o.shape) != want:
            raise InputError(
                f"level {i} (stride {s}) output has shape {tuple(o.shape)}, the spec implies {want}"
            )


class YoloDetector(nn.Module):
    """module (raw maps per level) + in-graph decode -> (boxes [B, N, 4] xyxy px, scores [B, N,
    C])."""

    def __init__(
        self, module: nn.Module, spec: YoloHeadSpec, imgsz: int, uint8_input: bool = False
    ) -> None:
        super().__init__()
        self.module, self.spec, self.uint8_input = module.eval(), spec, uint8_input
        for i, s in enumerate(spec.strides):
            n = imgsz // s
            ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            self.register_buffer(
                f"grid{i}",
                torch.stack([xs, ys], -1).reshape(1, 1, n * n, 2).float(),
                persistent=False,
            )
        self.register_buffer(
            "bins", torch.arange(spec.reg_max, dtype=torch.float32), persistent=False
        )

    def forward(self, images: torch.Tensor):
        x = images.float() * (1.0 / 255.0) if self.uint8_input else images
        boxes, scores = [], []
        for i, (raw, s) in enumerate(zip(self.module(x), self.spec.strides)):
            grid = getattr(self, f"grid{i}")
            b, c = (self._dfl if self.spec.kind == "dfl" else self._anchor)(raw, grid, s, i)
            boxes.append(b)
            scores.append(c)
        return torch.cat(boxes, 1), torch.cat(scores, 1)

    def _dfl(self, raw, grid, stride, level):
        bsz, ch, h, w = raw.shape
        r = self.spec.reg_max
        flat = raw.reshape(bsz, ch, h * w).transpose(1, 2)  # [B, HW, 4r + C]
        # [B, HW, 4]
        dist = torch.softmax(flat[..., : 4 * r].reshape(bsz, h * w, 4, r), -1) @ self.bins
        centre = grid[0] + 0.5
        xyxy = torch.cat([centre - dist[..., :2], centre + dist[..., 2:]], -1) * stride
        return xyxy, torch.sigmoid(flat[..., 4 * r :])

    def _anchor(self, raw, grid, stride, level):
        bsz, _, h, w = raw.shape
        na, nc = len(self.spec.anchors[level]), self.spec.num_classes
        anchors = torch.tensor(self.spec.anchors[level], dtype=torch.float32).view(1, na, 1, 2)
        p = torch.sigmoid(raw.reshape(bsz, na, 5 + nc, h * w).transpose(2, 3))  # [B, A, HW, 5 + C]
        xy = (p[..., :2] * 2 - 0.5 + grid) * stride
        wh = (p[..., 2:4] * 2) ** 2 * anchors
        xyxy = torch.cat([xy - wh / 2, xy + wh / 2], -1).reshape(bsz, na * h * w, 4)
        return xyxy, (p[..., 4:5] * p[..., 5:]).reshape(bsz, na * h * w, nc)


def exportable_from_module(
    module: nn.Module,
    spec: YoloHeadSpec,
    imgsz: int = 640,
    class_names=None,
    name: str = "yolo",
    uint8_input: bool = False,
    nms: NMSParams = YOLO_NMS,
) -> ExportableModel:
    """Python API: wrap a YOLO-style module for :func:`exporters.pipeline.export` (``model=``)."""
    check_head(module, spec, imgsz)
    names = list(class_names) if class_names else [f"class{i}" for i in range(spec.num_classes)]
    if len(names) != spec.num_classes:
        raise InputError(
            f"{len(names)} class names given for a head with {spec.num_classes} classes"
        )
    return ExportableModel(
        module=YoloDetector(module, spec, imgsz, uint8_input).eval(),
        family="yolo",
        name=name,
        class_names=names,
        imgsz=(imgsz, imgsz),
        nms=nms,
        normalization={"in_graph": True},
        source={"module": type(module).__name__},
        category_ids=list(range(1, len(names) + 1)),
        notes={"head": spec.kind, "strides": list(spec.strides)},
    )


class UltralyticsDetector(nn.Module):
    """An Ultralytics DetectionModel -> raw contract. Its head returns [B, 4 + C, N] (cxcywh px,
    probs)."""

    def __init__(self, model: nn.Module, uint8_input: bool = False) -> None:
        super().__init__()
        self.model, self.uint8_input = model.eval(), uint8_input

    def forward(self, images):
        x = images.float() * (1.0 / 255.0) if self.uint8_input else images
        y = self.model(x)
        y = (y[0] if isinstance(y, (list, tuple)) else y).transpose(1, 2)  # [B, N, 4 + C]
        cxcy, wh = y[..., :2], y[..., 2:4]
        return torch.cat([cxcy - wh / 2, cxcy + wh / 2], -1), y[..., 4:]


@register_model(
    "ultralytics",
    family="yolo",
    own_weights=True,
    description=(
        "Ultralytics YOLOv5u/v8/11 checkpoint given with --weights "
        "(needs the optional ultralytics package)"
    ),
)
def build_ultralytics(request: BuildRequest) -> ExportableModel:
    """Load an Ultralytics checkpoint (.pt) or config (.yaml, random init) with the ultralytics
    package."""
    path, imgsz, uint8_input, source = (
        request.weights,
        request.imgsz,
        request.uint8_input,
        request.source,
    )
    try:
        from ultralytics import YOLO
    except ImportError:
        raise ExportError(
            "Ultralytics checkpoints need the optional package 'ultralytics' (AGPL-3.0; edgedet"
            " does not vendor it): pip install ultralytics"
        ) from None
    if path is None:
        raise InputError(
            "--model ultralytics needs --weights yolov8n.pt (a checkpoint) or a model .yaml"
        )
    model = YOLO(str(path)).model.float().eval()
    head = model.model[-1]
    if getattr(head, "end2end", False):
        head.end2end = (
            False  # NMS-free heads: take the one-to-many branch and run edgedet's NMS on it
        )
    names = [model.names[i] for i in range(len(model.names))]
    size = imgsz or 640
    return ExportableModel(
        module=UltralyticsDetector(model, uint8_input).eval(),
        family="yolo",
        name=f"ultralytics:{type(head).__name__}",
        class_names=names,
        imgsz=(size, size),
        nms=YOLO_NMS,
        normalization={"in_graph": True},
        source=source,
        category_ids=list(range(1, len(names) + 1)),
        notes={"ultralytics_head": type(head).__name__, "strides": [int(s) for s in head.stride]},
    )
