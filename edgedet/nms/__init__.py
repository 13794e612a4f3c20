"""Non-maximum suppression: one specification, every implementation findable from here.

The semantics every implementation follows are in docs/nms.md.

    specification  params.py (NMSParams), opdef.py (the EdgeDetNMS op's name, domain, attributes),
                   reference.py (the executable oracle)
    host           host.py (numpy, the runtime's NMS), topk.py (NMS-free top-k selection), boxes.py
    ONNX graph     edgedet/onnx/nms/ (the EdgeDetNMS node and its function, standard-op body,
                   EfficientNMS_TRT, top-k), ONNX/TensorRT tier
    CUDA           edgedet/csrc/nms_kernels.cu (+ .h): the kernels the TensorRT plugin runs,
                   compiled by edgedet/cuda_build.py; their ctypes binding for tests and
                   benchmarks is benchmarks/gpu/nms_kernels.py (CuPy, device machine only)
    plugin         edgedet/csrc/plugin/edgedet_nms_plugin.cpp, built by edgedet/trt/plugin_build.py
    torch          exporters/nms_torch.py: the op as seen by torch.onnx.export (torch tier)
"""

from edgedet.nms.boxes import NMSOutput
from edgedet.nms.host import batched_nms, nms
from edgedet.nms.params import BOX_CENTER_SIZE, BOX_CORNERS, NMSParams
from edgedet.nms.reference import reference_nms

__all__ = [
    "NMSParams",
    "BOX_CORNERS",
    "BOX_CENTER_SIZE",
    "NMSOutput",
    "batched_nms",
    "nms",
    "reference_nms",
]
