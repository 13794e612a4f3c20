"""Read a plan file and refuse what is obviously not one, before TensorRT sees it.

edgedet engines are plain TensorRT plan files (what ``build_serialized_network`` returns),
with metadata in the ``.json`` sidecar: tools that prepend JSON to the plan (Ultralytics'
4-byte length + JSON header, ultralytics/engine/exporter.py ``export_engine``) break trtexec and
DeepStream, which deserialise the file from byte 0 as a plan. The plan layout
itself is undocumented, so beyond these checks only TensorRT can tell a valid plan; its
refusal is turned into a :class:`ModelError` by the backend.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgedet.errors import ModelError

ONNX_HINT = (
    "build an engine from it with `edgedet build model.onnx -o model.engine`, or open it with"
    " --backend onnxruntime"
)


def read_plan(path: str | os.PathLike) -> bytes:
    """The bytes of engine file ``path``; ModelError if missing, empty, or clearly not a plan."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"engine file {path} does not exist")
    data = path.read_bytes()
    problem = plan_problem(data)
    if problem:
        raise ModelError(f"{path} {problem}")
    return data


def plan_problem(data: bytes) -> str | None:
    """Why ``data`` cannot be a TensorRT plan file, or None when it might be one."""
    if not data:
        return (
            "is empty (0 bytes); the build was interrupted or the copy failed: rebuild or copy it"
            " again"
        )
    head = data[:64].lstrip()
    if head[:1] in (b"{", b"["):
        return (
            "starts with JSON, not a TensorRT plan: is it the .json manifest? Open the engine file"
            " itself"
        )
    if len(data) > 8 and data[4:5] == b"{" and 0 < int.from_bytes(data[:4], "little") < len(data):
        return (
            "starts with a length-prefixed JSON header (Ultralytics-style metadata), not a plain"
            " TensorRT plan; TensorRT cannot read it: rebuild it with `edgedet build`, or cut the"
            " first 4 + N header bytes"
        )
    if _looks_like_onnx(data):
        return f"looks like an ONNX model, not a TensorRT engine: {ONNX_HINT}"
    return None


def _looks_like_onnx(data: bytes) -> bool:
    """An ONNX ModelProto serialises ir_version first (tag 0x08, a small varint) followed by another
    ModelProto field: producer_name 0x12, producer_version 0x1a, domain 0x22, doc_string 0x32,
    graph 0x3a or opset_import 0x42."""
    return (
        len(data) > 3
        and data[0] == 0x08
        and 3 <= data[1] <= 20
        and data[2] in (0x12, 0x1A, 0x22, 0x32, 0x3A, 0x42)
    )
