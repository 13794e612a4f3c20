"""ONNX file handling shared by the toolchain: load with clear errors, simplify, check."""

from __future__ import annotations

import os
from pathlib import Path

from edgedet.errors import ModelError, first_line, require


def load_onnx(path: str | os.PathLike, load_external: bool = True):
    """Load an ONNX model; ModelError naming the file if missing, truncated or not ONNX."""
    onnx = require("onnx", "build", "Reading ONNX files")  # edgedet[build]: onnx without torch
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file {path} does not exist")
    if path.stat().st_size == 0:
        raise ModelError(f"ONNX file {path} is empty")
    try:
        model = onnx.load(str(path), load_external_data=load_external)
    except Exception as exc:  # DecodeError, OSError for missing external data
        raise ModelError(
            f"{path} is not a readable ONNX model ({first_line(exc, 200)}); "
            "it may be truncated or another file type: re-export it"
        ) from None
    if not model.graph.node:
        raise ModelError(
            f"{path} parsed but holds an empty graph; it is probably truncated or not ONNX"
        )
    return model


def check_model(model, where: str = "model") -> None:
    """onnx.checker (full, with shape inference); ModelError naming the first problem."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ModelError(f"{where} fails the ONNX checker: {first_line(exc, 300)}") from None


def simplify(model):
    """onnxslim: constant folding, dead-node and redundant-op elimination; returns a new model."""
    import onnxslim

    from edgedet.onnx.nms.edgedet_op import add_function_bodies

    try:
        # onnxslim prunes formal inputs a local function does not read, which breaks EdgeDetNMS's
        # positional optional inputs: rebuild the function body afterwards
        return add_function_bodies(onnxslim.slim(model))
    except Exception as exc:  # onnxslim is an optimisation: never let it lose an export
        import warnings

        warnings.warn(
            f"onnxslim could not simplify the graph ({exc}); keeping it unsimplified", stacklevel=2
        )
        return model


def opset_of(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def io_specs(model) -> tuple[list, list]:
    """Graph inputs and outputs as edgedet TensorSpecs (-1 for dynamic dims)."""
    import onnx

    from edgedet.contract import TensorSpec

    def spec(vi):
        t = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        return TensorSpec(vi.name, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, dims)

    inits = {i.name for i in model.graph.initializer}
    return [spec(i) for i in model.graph.input if i.name not in inits], [
        spec(o) for o in model.graph.output
    ]
