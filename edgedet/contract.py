"""The detection contract (v1): tensor names, shapes and dtypes every edgedet artifact obeys.

Input
    ``images``      [B, 3, H, W] RGB, letterboxed to the model size; float32 in 0..1
                    (default) or uint8 0..255. Mean/std normalisation is inside the graph.
Outputs, NMS in the graph (EfficientNMS conventions)
    ``num_dets``    int32   [B, 1]
    ``det_boxes``   float32 [B, K, 4]  (x1, y1, x2, y2) in input pixels
    ``det_scores``  float32 [B, K]
    ``det_classes`` int32   [B, K]     rows past num_dets are zero
Outputs, raw (NMS elsewhere)
    ``boxes``       float32 [B, N, 4]  (x1, y1, x2, y2) in input pixels
    ``scores``      float32 [B, N, C]  probabilities

See docs/contract.md for the prose version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from edgedet.errors import ModelError


class Vocabulary(str, enum.Enum):  # noqa: UP042 - StrEnum hashes and reprs by name
    """A closed set of manifest strings. Members are the strings themselves: equal to, hashed,
    formatted, repr'd and JSON-encoded like their value, so manifests, messages and comparisons
    with plain strings stay byte-for-byte what they were. (``click.Choice`` gets tuples of plain
    strings such as NMS_IMPLEMENTATIONS: click >= 8.2 would offer an Enum's member *names*.)"""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return repr(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Task(Vocabulary):
    """Manifest ``task``: which runtime class opens the artifact."""

    DETECT = "detect"
    CLASSIFY = "classify"


class OutputKind(Vocabulary):
    """Manifest ``output_kind``: which output form the graph follows."""

    NMS = "nms"  # num_dets, det_boxes, det_scores, det_classes (NMS in the graph)
    RAW = "raw"  # boxes, scores (NMS on the host)
    CLASSIFY = "classify"  # probs


class NMSWhere(Vocabulary):
    """Manifest ``nms_where``: where NMS runs."""

    GRAPH = "graph"
    HOST = "host"
    NONE = "none"  # classifiers: no NMS anywhere


class NMSImplementation(Vocabulary):
    """NMS implementations: export/attach ``--nms`` choices (edgedet.onnx.nms registry, in order of
    preference) and the manifest's ``nms_implementation``.

    ``--nms``: edgedet (our op: TensorRT plugin / ONNX local function), graph (standard ONNX ops),
    efficient (NVIDIA EfficientNMS_TRT, TensorRT only), none (raw outputs, NMS on the host).
    The manifest records the in-graph one, ``host`` for raw outputs, or ``end-to-end`` for heads
    that need no NMS (threshold + top-k).
    """

    EDGEDET = "edgedet"
    GRAPH = "graph"
    EFFICIENT = "efficient"
    NONE = "none"
    HOST = "host"
    END_TO_END = "end-to-end"


class InputDType(Vocabulary):
    """Manifest ``input.dtype``."""

    FLOAT32 = "float32"  # 0..1
    UINT8 = "uint8"  # 0..255, the /255 inside the graph


class Resize(Vocabulary):
    """Manifest ``input.resize``."""

    LETTERBOX = "letterbox"  # keep aspect, pad
    STRETCH = "stretch"  # resize to H x W, aspect not kept


class Padding(Vocabulary):
    """Manifest ``input.padding`` (letterbox only)."""

    CENTER = "center"  # split on both sides
    TOP_LEFT = "top-left"  # YOLOX: image top-left, all padding right/bottom


class ChannelOrder(Vocabulary):
    """Manifest ``input.channel_order``: what the runtime feeds."""

    RGB = "RGB"  # the contract
    BGR = "BGR"


class Precision(Vocabulary):
    """Manifest ``precision.mode``: the ONNX graph's precision."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class EnginePrecision(Vocabulary):
    """Manifest ``tensorrt.precision`` (and ``precision.engine``): how TensorRT typed the
    network."""

    STRONGLY_TYPED = "strongly-typed"
    LEGACY_FP16 = "legacy-fp16"
    LEGACY_INT8 = "legacy-int8"


class HardwareCompatibility(Vocabulary):
    """Manifest ``tensorrt.hardware_compatibility_level`` (TensorRT HardwareCompatibilityLevel)."""

    NONE = "NONE"
    AMPERE_PLUS = "AMPERE_PLUS"
    SAME_COMPUTE_CAPABILITY = "SAME_COMPUTE_CAPABILITY"


INPUT_NAME = "images"

NUM_DETS = "num_dets"
DET_BOXES = "det_boxes"
DET_SCORES = "det_scores"
DET_CLASSES = "det_classes"
DET_MASKS = "det_masks"
NMS_OUTPUTS = (NUM_DETS, DET_BOXES, DET_SCORES, DET_CLASSES)

RAW_BOXES = "boxes"
RAW_SCORES = "scores"
RAW_OUTPUTS = (RAW_BOXES, RAW_SCORES)
# End-to-end heads (DETR family, YOLOv10/YOLO26 end-to-end) need no NMS: score threshold + top-k
# (edgedet.nms.topk, edgedet/onnx/nms/topk.py). A manifest says so with nms_implementation
# END_TO_END; their raw form may add ``labels`` int [B, N] (one class per box; ``scores`` is then
# [B, N, 1]).
RAW_LABELS = "labels"
END_TO_END = NMSImplementation.END_TO_END

# The `--nms` choices: edgedet.onnx.nms registry names, in order of preference (NMSImplementation)
NMS_IMPLEMENTATIONS = tuple(
    m.value
    for m in (
        NMSImplementation.EDGEDET,
        NMSImplementation.GRAPH,
        NMSImplementation.EFFICIENT,
        NMSImplementation.NONE,
    )
)

# Optional float32 [1] graph inputs of a model exported with run-time NMS thresholds
# (--nms edgedet --runtime-thresholds); a runtime feeds them, defaulting to the manifest's values.
SCORE_THRESHOLD_INPUT = "score_threshold"
IOU_THRESHOLD_INPUT = "iou_threshold"
THRESHOLD_INPUTS = (SCORE_THRESHOLD_INPUT, IOU_THRESHOLD_INPUT)

CLASS_PROBS = "probs"  # classifiers: float32 [B, C] softmax probabilities

KIND_NMS = OutputKind.NMS
KIND_RAW = OutputKind.RAW
KIND_CLASSIFY = OutputKind.CLASSIFY

INPUT_DTYPES = InputDType.values()
DEFAULT_PAD_VALUE = 114  # letterbox grey, the value YOLO-family tools use

OUTPUT_DTYPES = {
    NUM_DETS: np.int32,
    DET_BOXES: np.float32,
    DET_SCORES: np.float32,
    DET_CLASSES: np.int32,
    RAW_BOXES: np.float32,
    RAW_SCORES: np.float32,
}


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one graph input or output; -1 marks a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(d["name"], d["dtype"], tuple(int(x) for x in d["shape"]))


def output_kind(output_names: list[str] | tuple[str, ...]) -> str:
    """Say whether a graph follows the NMS form or the raw form of the contract."""
    names = set(output_names)
    if set(NMS_OUTPUTS) <= names:
        return KIND_NMS
    if set(RAW_OUTPUTS) <= names:
        return KIND_RAW
    raise ModelError(
        f"model outputs {sorted(names)} follow neither edgedet output form: expected "
        f"{list(NMS_OUTPUTS)} (NMS in graph) or {list(RAW_OUTPUTS)} (raw); "
        "use `edgedet attach-nms` to convert a third-party detector"
    )


def check_outputs(outputs: dict[str, np.ndarray], kind: str) -> None:
    """Validate backend outputs against the contract; raises ModelError naming the tensor."""
    names = NMS_OUTPUTS if kind == KIND_NMS else RAW_OUTPUTS
    for name in names:
        if name not in outputs:
            raise ModelError(
                f"backend returned no '{name}' output; the artifact does not follow the contract"
            )
    if kind == KIND_NMS:
        b = outputs[NUM_DETS].shape[0]
        k = outputs[DET_BOXES].shape[1]
        expected = {NUM_DETS: (b, 1), DET_BOXES: (b, k, 4), DET_SCORES: (b, k), DET_CLASSES: (b, k)}
    else:
        b, n = outputs[RAW_BOXES].shape[:2]
        expected = {RAW_BOXES: (b, n, 4), RAW_SCORES: (b, n, outputs[RAW_SCORES].shape[-1])}
    for name, shape in expected.items():
        if tuple(outputs[name].shape) != shape:
            raise ModelError(
                f"output '{name}' has shape {tuple(outputs[name].shape)}, the contract says {shape}"
            )
