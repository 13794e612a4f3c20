"""NMS parameters shared by every implementation (reference, host, ONNX graph, CUDA, TensorRT).

The semantics are specified in docs/nms.md; :mod:`edgedet.nms.reference` is the
executable form of that specification.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from edgedet.errors import InputError

BOX_CORNERS = 0  # (x1, y1, x2, y2)
BOX_CENTER_SIZE = 1  # (cx, cy, w, h)

# torchvision's BoxCoder clamps dw/dh before exp() at log(1000/16); we do the same
# when decoding against anchors so torchvision-trained heads decode identically.
DEFAULT_BBOX_XFORM_CLIP = math.log(1000.0 / 16)


@dataclass(frozen=True)
class NMSParams:
    """Parameters of the EdgeDetNMS operation.

    score_threshold:  candidates with (activated) score > score_threshold survive.
    iou_threshold:    a candidate is suppressed when IoU > iou_threshold with a kept one.
    max_output_boxes: K, the padded length of the outputs.
    top_k:            at most this many candidates per image enter NMS (after thresholding,
                      ranked by score). 0 means no limit.
    background_class: class index ignored entirely; -1 for none.
    score_activation: apply sigmoid to scores first.
    class_agnostic:   suppress across classes (otherwise only within a class).
    box_coding:       0 = corners (x1, y1, x2, y2), 1 = centre-size (cx, cy, w, h).
    box_scale:        with anchors, deltas are divided by these (torchvision BoxCoder weights).
    """

    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_output_boxes: int = 100
    top_k: int = 1000
    background_class: int = -1
    score_activation: bool = False
    class_agnostic: bool = False
    box_coding: int = BOX_CORNERS
    box_scale: tuple[float, float, float, float] = field(default=(1.0, 1.0, 1.0, 1.0))

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score_threshold)):
            raise InputError(f"score_threshold must be a finite number, got {self.score_threshold}")
        if not (0.0 <= self.iou_threshold <= 1.0):
            raise InputError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if self.max_output_boxes < 1:
            raise InputError(f"max_output_boxes must be >= 1, got {self.max_output_boxes}")
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0 (0 = no limit), got {self.top_k}")
        if self.box_coding not in (BOX_CORNERS, BOX_CENTER_SIZE):
            raise InputError(
                f"box_coding must be 0 (corners) or 1 (centre-size), got {self.box_coding}"
            )
        if len(self.box_scale) != 4 or any(s == 0 for s in self.box_scale):
            raise InputError(f"box_scale must be four non-zero numbers, got {self.box_scale}")
        object.__setattr__(self, "box_scale", tuple(float(s) for s in self.box_scale))

    def replace(self, **changes) -> NMSParams:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["box_scale"] = list(self.box_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NMSParams:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if "box_scale" in kwargs:
            kwargs["box_scale"] = tuple(kwargs["box_scale"])
        return cls(**kwargs)
