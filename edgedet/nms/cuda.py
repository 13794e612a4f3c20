"""ctypes binding of the CUDA NMS kernels (edgedet/csrc/nms_kernels.h), shared by tests and benchmarks.

No torch: the struct mirror and ``workspace_size`` need only ctypes (the size query runs on the
host); ``run_nms_cuda`` takes CuPy arrays (CuPy is imported inside it) and returns CuPy outputs.
"""

from __future__ import annotations

import ctypes

import numpy as np

from edgedet.errors import EdgeDetError
from edgedet.nms.boxes import NMSOutput
from edgedet.nms.params import NMSParams

FLOAT32, FLOAT16 = 0, 1  # EdgeDetNMSDataType


class EdgeDetNMSParams(ctypes.Structure):
    """Mirror of the C struct EdgeDetNMSParams (field order and types are the ABI)."""

    _fields_ = [(name, ctypes.c_int32) for name in (
        "batch", "num_boxes", "num_classes", "per_class_boxes", "anchors_batch", "data_type", "max_output_boxes",
        "top_k", "background_class", "score_activation", "class_agnostic", "box_coding")] + [
        ("box_scale", ctypes.c_float * 4), ("score_threshold", ctypes.c_float), ("iou_threshold", ctypes.c_float)]


def c_params(params: NMSParams, batch: int, num_boxes: int, num_classes: int, per_class_boxes: bool = False,
             anchors_batch: int = 0, data_type: int = FLOAT32) -> EdgeDetNMSParams:
    """The C struct for ``params`` and the tensor shapes (anchors_batch 0: no anchors, 1 or B)."""
    return EdgeDetNMSParams(batch, num_boxes, num_classes, int(per_class_boxes), anchors_batch, data_type,
                            params.max_output_boxes, params.top_k, params.background_class, int(params.score_activation),
                            int(params.class_agnostic), params.box_coding, (ctypes.c_float * 4)(*params.box_scale),
                            params.score_threshold, params.iou_threshold)


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the two entry points' signatures on a loaded kernels library; returns ``lib``."""
    lib.edgedet_nms_workspace_size.restype = ctypes.c_size_t
    lib.edgedet_nms_workspace_size.argtypes = [ctypes.POINTER(EdgeDetNMSParams)]
    lib.edgedet_nms.restype = ctypes.c_int
    lib.edgedet_nms.argtypes = [ctypes.POINTER(EdgeDetNMSParams)] + [ctypes.c_void_p] * 11 + [ctypes.c_size_t, ctypes.c_void_p]
    return lib


def workspace_size(lib: ctypes.CDLL, cparams: EdgeDetNMSParams) -> int:
    """Scratch bytes edgedet_nms needs (0: invalid parameters). Host only, no GPU needed."""
    return int(bind(lib).edgedet_nms_workspace_size(ctypes.byref(cparams)))


def _ptr(array) -> int | None:
    return None if array is None else int(array.data.ptr)


def run_nms_cuda(lib: ctypes.CDLL, boxes, scores, params: NMSParams, anchors=None, *, score_threshold_dev=None,
                 iou_threshold_dev=None, workspace=None, outputs: NMSOutput | None = None, stream=None) -> NMSOutput:
    """Run edgedet_nms on CuPy arrays; returns NMSOutput of CuPy arrays (not synchronised).

    boxes [B, N, 4] or [B, N, C, 4], scores [B, N, C], anchors [1|B, N, 4] or None: C-contiguous CuPy
    float32 or float16, all the same dtype (det_boxes / det_scores come back in that dtype).
    score_threshold_dev / iou_threshold_dev: optional float32 CuPy scalars read on the device instead
    of the params' values. workspace: a preallocated CuPy uint8 buffer (allocated here when None);
    outputs: preallocated outputs to reuse. stream: a CuPy stream (the current one when None).
    """
    import cupy as cp

    b, n, c = scores.shape
    dtype = np.dtype(scores.dtype)
    if dtype not in (np.float32, np.float16) or any(t is not None and t.dtype != dtype for t in (boxes, anchors)):
        raise EdgeDetError(f"CUDA NMS needs boxes, scores (and anchors) all float32 or all float16, got scores {dtype}")
    arrays = [t for t in (boxes, scores, anchors, score_threshold_dev, iou_threshold_dev) if t is not None]
    if not all(t.flags.c_contiguous for t in arrays):
        raise EdgeDetError("CUDA NMS inputs must be C-contiguous CuPy arrays")
    cparams = c_params(params, b, n, c, boxes.ndim == 4, 0 if anchors is None else anchors.shape[0],
                       FLOAT16 if dtype == np.float16 else FLOAT32)
    need = workspace_size(lib, cparams)
    if need == 0:
        raise EdgeDetError(f"CUDA NMS refused the parameters {params} for scores {scores.shape} (see nms_kernels.h)")
    if workspace is None:
        workspace = cp.empty(need, cp.uint8)
    k = params.max_output_boxes
    if outputs is None:
        outputs = NMSOutput(cp.empty((b, 1), cp.int32), cp.empty((b, k, 4), dtype), cp.empty((b, k), dtype),
                            cp.empty((b, k), cp.int32), cp.empty((b, k), cp.int32))
    stream = cp.cuda.get_current_stream() if stream is None else stream
    rc = lib.edgedet_nms(ctypes.byref(cparams), _ptr(boxes), _ptr(scores), _ptr(anchors), _ptr(score_threshold_dev),
                         _ptr(iou_threshold_dev), *(_ptr(o) for o in outputs), _ptr(workspace), workspace.nbytes, stream.ptr)
    if rc != 0:
        raise EdgeDetError(f"edgedet_nms failed with code {rc} ({'invalid parameters or workspace' if rc == -1 else 'CUDA error'})")
    return outputs
