"""A tiny ONNX node builder whose output works both as graph nodes and as a FunctionProto body.

Constants are Constant nodes (functions cannot hold initializers); names carry a prefix so the
NMS subgraph never collides with the model it is appended to.
"""

from __future__ import annotations

import numpy as np


class NodeBuilder:
    def __init__(self, prefix: str) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.prefix = prefix
        self.nodes: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value, dtype=np.int64, hint: str = "c") -> str:
        out = self.name(hint)
        tensor = self.numpy_helper.from_array(np.asarray(value, dtype=dtype), out)
        self.nodes.append(self.helper.make_node("Constant", [], [out], name=out, value=tensor))
        return out

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs):
        """Append one node; returns its output name (or a list when ``outputs`` > 1)."""
        outs = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, name=outs[0], **attrs))
        return outs[0] if outputs == 1 else outs

    def identity(self, src: str, dst: str) -> None:
        self.nodes.append(self.helper.make_node("Identity", [src], [dst], name=f"{self.prefix}{dst}"))

    # -- small compositions used by NMS graphs ------------------------------------------------
    def slice_last(self, x: str, start: int, end: int) -> str:
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([-1])])

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.op("Unsqueeze", [x, self.const(axes)])

    def dim(self, x: str, axis: int) -> str:
        """Size of ``x`` along ``axis`` as an int64 [1] tensor (works for dynamic dims)."""
        return self.op("Gather", [self.op("Shape", [x]), self.const([axis])], axis=0)
