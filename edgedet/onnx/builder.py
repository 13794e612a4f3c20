"""The one ONNX node builder: nodes for a FunctionProto body, a list to splice in, or a graph.

Names carry a prefix, so the added nodes never collide with the model they are appended to.
Without a ``graph`` the nodes collect in ``nodes`` and constants are Constant nodes (functions
cannot hold initializers): the same builder code yields the ``graph`` NMS implementation (nodes
appended to the model) and the body of the EdgeDetNMS local function (``function``). With a
``graph`` (attach-nms editing a third-party model) nodes are appended to it directly and
constants become its initializers.
"""

from __future__ import annotations

import numpy as np


class NodeBuilder:
    def __init__(self, prefix: str, graph=None) -> None:
        from onnx import TensorProto, helper, numpy_helper

        self.helper, self.numpy_helper, self.float_type = helper, numpy_helper, TensorProto.FLOAT
        self.prefix = prefix
        self.nodes = graph.node if graph is not None else []
        self._initializers = graph.initializer if graph is not None else None
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value, dtype=np.int64, hint: str = "c") -> str:
        out = self.name(hint)
        tensor = self.numpy_helper.from_array(np.asarray(value, dtype=dtype), out)
        if self._initializers is not None:
            self._initializers.append(tensor)
            return out
        self.nodes.append(self.helper.make_node("Constant", [], [out], name=out, value=tensor))
        return out

    def op(
        self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs
    ):
        """Append one node; returns its output name (or a list when ``outputs`` > 1)."""
        outs = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, name=outs[0], **attrs))
        return outs[0] if outputs == 1 else outs

    def as_float(self, x: str, elem_type: int) -> str:
        """``x`` as float32: a Cast for float16 / double inputs (decode and NMS compute in
        float32)."""
        return x if elem_type == self.float_type else self.op("Cast", [x], to=self.float_type)

    def function(
        self, domain: str, name: str, inputs: list[str], outputs: list[str], opset: int = 17
    ):
        """The nodes as an ONNX local function (FunctionProto) with the given formal
        inputs/outputs."""
        return self.helper.make_function(
            domain, name, inputs, outputs, list(self.nodes), [self.helper.make_opsetid("", opset)]
        )

    # -- small compositions used by NMS graphs ------------------------------------------------
    def slice_last(self, x: str, start: int, end: int) -> str:
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([-1])])

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.op("Unsqueeze", [x, self.const(axes)])

    def dim(self, x: str, axis: int) -> str:
        """Size of ``x`` along ``axis`` as an int64 [1] tensor (works for dynamic dims)."""
        return self.op("Gather", [self.op("Shape", [x]), self.const([axis])], axis=0)
