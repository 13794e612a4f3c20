"""FP32 ONNX -> FP16 ONNX for strongly typed TensorRT builds.

I/O stays FP32 (the contract), and so do the nodes of the detection placement (NMS,
decode, last head convs) plus ONNX Runtime's default block list (TopK,
NonMaxSuppression, RoiAlign, Range, CumSum, Min/Max, Upsample, ...). Casts are inserted
at every FP16/FP32 boundary by ONNX Runtime's converter.
"""

from __future__ import annotations

from edgedet.errors import InputError
from edgedet.onnx.quantize.placement import Placement


def to_fp16(model, placement: Placement):
    """Return an FP16 copy of ``model`` (ModelProto) with ``placement`` kept in FP32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        raise InputError("the model already holds FP16 weights; quantise the FP32 export instead")
    from edgedet.onnx.graph import toposort

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    # The converter decides where Casts go from value_info types: stale or missing ones leave FP16
    # tensors flowing into FP32 nodes. Re-infer them (unknown custom ops are skipped, not fatal).
    del copy.graph.value_info[:]
    copy = onnx.shape_inference.infer_shapes(copy)
    result = convert_float_to_float16(copy, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST),
                                      node_block_list=placement.names, disable_shape_infer=True)
    toposort(result)  # the converter appends its Cast nodes at the end of the node list
    return result
