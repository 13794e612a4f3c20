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

from dataclasses import dataclass

import numpy as np

from edgedet.errors import ModelError

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
# (edgedet.nms.topk, edgedet/onnx/nms/topk.py). A manifest says so with nms_implementation END_TO_END;
# their raw form may add ``labels`` int [B, N] (one class per box; ``scores`` is then [B, N, 1]).
RAW_LABELS = "labels"
END_TO_END = "end-to-end"

# Where NMS comes from in an exported model (edgedet.onnx.nms registry, in order of preference):
# edgedet (our op: TensorRT plugin / ONNX local function), graph (standard ONNX ops),
# efficient (NVIDIA EfficientNMS_TRT, TensorRT only), none (raw outputs, NMS on the host).
NMS_IMPLEMENTATIONS = ("edgedet", "graph", "efficient", "none")

# Optional float32 [1] graph inputs of a model exported with run-time NMS thresholds
# (--nms edgedet --runtime-thresholds); a runtime feeds them, defaulting to the manifest's values.
SCORE_THRESHOLD_INPUT = "score_threshold"
IOU_THRESHOLD_INPUT = "iou_threshold"
THRESHOLD_INPUTS = (SCORE_THRESHOLD_INPUT, IOU_THRESHOLD_INPUT)

CLASS_PROBS = "probs"  # classifiers: float32 [B, C] softmax probabilities

KIND_NMS = "nms"
KIND_RAW = "raw"
KIND_CLASSIFY = "classify"

INPUT_DTYPES = ("float32", "uint8")
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
    def from_dict(cls, d: dict) -> "TensorSpec":
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
            raise ModelError(f"backend returned no '{name}' output; the artifact does not follow the contract")
    if kind == KIND_NMS:
        b = outputs[NUM_DETS].shape[0]
        k = outputs[DET_BOXES].shape[1]
        expected = {NUM_DETS: (b, 1), DET_BOXES: (b, k, 4), DET_SCORES: (b, k), DET_CLASSES: (b, k)}
    else:
        b, n = outputs[RAW_BOXES].shape[:2]
        expected = {RAW_BOXES: (b, n, 4), RAW_SCORES: (b, n, outputs[RAW_SCORES].shape[-1])}
    for name, shape in expected.items():
        if tuple(outputs[name].shape) != shape:
            raise ModelError(f"output '{name}' has shape {tuple(outputs[name].shape)}, the contract says {shape}")
