"""Inference backends behind one interface (:class:`edgedet.backends.base.Backend`).

Backends are imported lazily, so `import edgedet` works with none installed.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgedet.errors import InputError

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def open_backend(path: str | os.PathLike, backend: str = "auto", **options):
    """Open ``path`` with the named backend, or pick one from the file type ('auto')."""
    suffix = Path(path).suffix.lower()
    if backend == "auto":
        backend = "tensorrt" if suffix in ENGINE_SUFFIXES else "onnxruntime"
    if backend in ("onnxruntime", "ort"):
        from edgedet.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)
    if backend in ("tensorrt", "trt"):
        from edgedet.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path, **options)
    raise InputError(f"unknown backend '{backend}'; choose auto, onnxruntime or tensorrt")
