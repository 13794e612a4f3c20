"""ctypes binding of the CUDA NMS kernels (edgedet/csrc/nms_kernels.h), shared by tests and
benchmarks.

Test and benchmark code, not runtime: the TensorRT plugin runs the kernels in deployment; this
binding serves tests/nms/test_nms_cuda.py, tests/edgedet/test_csrc.py and
benchmarks/gpu/nms_cuda.py. CuPy
is
on the device machine (benchmarks/gpu/run.sh), not an edgedet dependency.

No torch: the struct mirror and ``workspace_size`` need only ctypes (the size query runs on the
host); ``run_nms_cuda`` takes device arrays through __cuda_array_interface__ (CuPy, torch CUDA
tensors) and imports CuPy only to allocate a workspace or outputs the caller did not pass.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np

from edgedet.errors import EdgeDetError
from edgedet.nms.boxes import NMSOutput
from edgedet.nms.params import NMSParams

FLOAT32, FLOAT16 = 0, 1  # EdgeDetNMSDataType


class EdgeDetNMSParams(ctypes.Structure):
    """Mirror of the C struct EdgeDetNMSParams (field order and types are the ABI)."""

    _fields_ = [
        (name, ctypes.c_int32)
        for name in (
            "batch",
            "num_boxes",
            "num_classes",
            "per_class_boxes",
            "anchors_batch",
            "data_type",
            "max_output_boxes",
            "top_k",
            "background_class",
            "score_activation",
            "class_agnostic",
            "box_coding",
        )
    ] + [
        ("box_scale", ctypes.c_float * 4),
        ("score_threshold", ctypes.c_float),
        ("iou_threshold", ctypes.c_float),
    ]


def c_params(
    params: NMSParams,
    batch: int,
    num_boxes: int,
    num_classes: int,
    per_class_boxes: bool = False,
    anchors_batch: int = 0,
    data_type: int = FLOAT32,
) -> EdgeDetNMSParams:
    """The C struct for ``params`` and the tensor shapes (anchors_batch 0: no anchors, 1 or B)."""
    return EdgeDetNMSParams(
        batch,
        num_boxes,
        num_classes,
        int(per_class_boxes),
        anchors_batch,
        data_type,
        params.max_output_boxes,
        params.top_k,
        params.background_class,
        int(params.score_activation),
        int(params.class_agnostic),
        params.box_coding,
        (ctypes.c_float * 4)(*params.box_scale),
        params.score_threshold,
        params.iou_threshold,
    )


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the two entry points' signatures on a loaded kernels library; returns ``lib``."""
    lib.edgedet_nms_workspace_size.restype = ctypes.c_size_t
    lib.edgedet_nms_workspace_size.argtypes = [ctypes.POINTER(EdgeDetNMSParams)]
    lib.edgedet_nms.restype = ctypes.c_int
    lib.edgedet_nms.argtypes = (
        [ctypes.POINTER(EdgeDetNMSParams)]
        + [ctypes.c_void_p] * 11
        + [ctypes.c_size_t, ctypes.c_void_p]
    )
    return lib


def workspace_size(lib: ctypes.CDLL, cparams: EdgeDetNMSParams) -> int:
    """Scratch bytes edgedet_nms needs (0: invalid parameters). Host only, no GPU needed."""
    return int(bind(lib).edgedet_nms_workspace_size(ctypes.byref(cparams)))


def _device_array(t, name: str):
    """(pointer, shape, dtype) of a C-contiguous device array with __cuda_array_interface__ (CuPy,
    torch, ...)."""
    if t is None:
        return None
    iface = getattr(t, "__cuda_array_interface__", None)
    if iface is None:
        raise EdgeDetError(
            f"CUDA NMS input '{name}' is a {type(t).__name__}; expected a device array (CuPy, torch"
            " CUDA tensor)"
        )
    shape, dtype = tuple(iface["shape"]), np.dtype(iface["typestr"])
    c_strides = tuple(
        int(np.prod(shape[i + 1 :], dtype=np.int64)) * dtype.itemsize for i in range(len(shape))
    )
    if iface.get("strides") not in (None, c_strides):
        raise EdgeDetError(
            f"CUDA NMS input '{name}' must be C-contiguous (strides {iface['strides']})"
        )
    return int(iface["data"][0]), shape, dtype


def _stream_ptr(stream) -> int:
    if stream is None or isinstance(stream, int):
        return stream or 0
    # CuPy / torch stream
    return int(getattr(stream, "ptr", None) or getattr(stream, "cuda_stream", 0))


def run_nms_cuda(
    lib: ctypes.CDLL, boxes, scores, params: NMSParams, anchors=None, **kwargs
) -> NMSOutput:
    """Run edgedet_nms once on device arrays; returns the outputs (not synchronised). See
    prepare_nms_cuda."""
    return prepare_nms_cuda(lib, boxes, scores, params, anchors, **kwargs)()


def prepare_nms_cuda(
    lib: ctypes.CDLL,
    boxes,
    scores,
    params: NMSParams,
    anchors=None,
    *,
    score_threshold_dev=None,
    iou_threshold_dev=None,
    workspace=None,
    outputs: NMSOutput | None = None,
    stream=None,
) -> Callable[[], NMSOutput]:
    """Check the arrays and build the C arguments once; returns a callable that launches edgedet_nms
    on the arrays' current contents and returns the outputs (not synchronised; EdgeDetError on
    failure).

    boxes [B, N, 4] or [B, N, C, 4], scores [B, N, C], anchors [1|B, N, 4] or None: C-contiguous
    device arrays (anything with __cuda_array_interface__: CuPy, torch CUDA tensors), all float32 or
    all float16 (det_boxes / det_scores come back in that dtype). score_threshold_dev /
    iou_threshold_dev: optional float32 device scalars read by the kernels instead of the params'
    values. workspace (uint8 device array of at least edgedet_nms_workspace_size bytes) and outputs
    (NMSOutput of device arrays: int32 [B, 1], dtype [B, K, 4], dtype [B, K], int32 [B, K], int32
    [B, K]) are allocated with CuPy when None. stream: CuPy / torch stream or raw cudaStream_t
    (None: the legacy default stream 0).
    """
    b_ptr, b_shape, dtype = _device_array(boxes, "boxes")
    s_ptr, (b, n, c), s_dtype = _device_array(scores, "scores")
    anc = _device_array(anchors, "anchors")
    if (
        dtype not in (np.float32, np.float16)
        or s_dtype != dtype
        or (anc is not None and anc[2] != dtype)
    ):
        raise EdgeDetError(
            f"CUDA NMS needs boxes, scores (and anchors) all float32 or all float16, got {dtype},"
            f" {s_dtype}"
        )
    cparams = c_params(
        params,
        b,
        n,
        c,
        len(b_shape) == 4,
        0 if anc is None else anc[1][0],
        FLOAT16 if dtype == np.float16 else FLOAT32,
    )
    need = workspace_size(lib, cparams)
    if need == 0:
        raise EdgeDetError(
            f"CUDA NMS refused the parameters {params} for scores {(b, n, c)} (see nms_kernels.h)"
        )
    if workspace is None or outputs is None:
        import cupy as cp

        k = params.max_output_boxes
        workspace = cp.empty(need, cp.uint8) if workspace is None else workspace
        outputs = outputs or NMSOutput(
            cp.empty((b, 1), cp.int32),
            cp.empty((b, k, 4), dtype),
            cp.empty((b, k), dtype),
            cp.empty((b, k), cp.int32),
            cp.empty((b, k), cp.int32),
        )
    w_ptr, w_shape, w_dtype = _device_array(workspace, "workspace")
    w_bytes = int(np.prod(w_shape, dtype=np.int64)) * w_dtype.itemsize
    thresholds = [
        _device_array(t, name)
        for t, name in (
            (score_threshold_dev, "score_threshold_dev"),
            (iou_threshold_dev, "iou_threshold_dev"),
        )
    ]
    if any(t is not None and (t[2] != np.float32) for t in thresholds):
        raise EdgeDetError("score_threshold_dev / iou_threshold_dev must be float32 device scalars")
    args = (
        ctypes.byref(cparams),
        b_ptr,
        s_ptr,
        None if anc is None else anc[0],
        *(None if t is None else t[0] for t in thresholds),
        *(_device_array(o, name)[0] for o, name in zip(outputs, NMSOutput._fields)),
        w_ptr,
        w_bytes,
        _stream_ptr(stream),
    )
    keep_alive = (
        cparams,
        boxes,
        scores,
        anchors,
        score_threshold_dev,
        iou_threshold_dev,
        workspace,
    )

    def call() -> NMSOutput:
        rc = lib.edgedet_nms(*args)
        if rc != 0:
            raise EdgeDetError(
                f"edgedet_nms failed with code {rc} "
                f"({'invalid parameters or workspace' if rc == -1 else 'CUDA error'})"
            )
        return outputs

    call.keep_alive = keep_alive  # the pointers in args stay valid as long as the callable lives
    return call
