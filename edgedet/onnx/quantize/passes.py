"""Graph passes applied after quantisation."""

from __future__ import annotations

import numpy as np

from edgedet.onnx.graph import GraphIndex


def unify_concat_scales(model) -> int:
    """Give every Q/DQ pair feeding one Concat the same (largest) scale; returns Concats changed.

    TensorRT can run a Concat in INT8 only when its inputs share one scale; taking the
    largest keeps every input's range representable (symmetric, so nothing clips).
    """
    from onnx import numpy_helper

    index = GraphIndex.of(model)
    inits = {i.name: i for i in model.graph.initializer}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Concat":
            continue
        pairs = [_qdq_pair(t, index) for t in node.input]
        if not pairs or any(p is None for p in pairs):
            continue
        names = {name for q, dq in pairs for name in (q.input[1], dq.input[1])}
        if not all(n in inits for n in names):
            continue
        values = [float(numpy_helper.to_array(inits[n]).max()) for n in names]
        if max(values) == min(values):
            continue
        shared = max(values)
        for name in names:
            arr = numpy_helper.to_array(inits[name])
            inits[name].CopyFrom(numpy_helper.from_array(np.full_like(arr, shared), name))
        changed += 1
    return changed


def _qdq_pair(tensor: str, index: GraphIndex):
    dq = index.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = index.producer.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear":
        return None
    return q, dq
