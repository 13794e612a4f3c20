"""ONNX Runtime backend: TensorRT EP -> CUDA EP -> CPU by default, overridable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgedet.backends.base import Backend, IOSpec
from edgedet.errors import InputError, ModelError, require

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "trt": "TensorrtExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider", "gpu": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}


def resolve_providers(requested: list[str] | tuple[str, ...] | str | None, available: list[str]) -> list[str]:
    """Map short names (trt, cuda, cpu) to ONNX Runtime providers and check they exist here."""
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)
    if isinstance(requested, str):
        requested = [r for r in requested.split(",") if r]
    out = []
    for name in requested:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in available:
            raise InputError(f"ONNX Runtime provider '{name}' is not available here (available: {', '.join(available)}); "
                             "for CUDA/TensorRT install onnxruntime-gpu: pip install 'edgedet[gpu]'")
        out.append(full)
    return out


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, providers=None, threads: int | None = None) -> None:
        super().__init__()
        ort = require("onnxruntime", "ort", "Running ONNX models")
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self.providers = resolve_providers(providers, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), options, providers=self.providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/NotImplemented types
            if "EfficientNMS_TRT" in str(exc):
                raise ModelError(f"{path} ends in NVIDIA's EfficientNMS_TRT plugin (--nms efficient), which only "
                                 "TensorRT runs: build an engine with `edgedet build`, or re-export with --nms edgedet "
                                 "(or graph) to run it in ONNX Runtime") from None
            raise ModelError(f"ONNX Runtime cannot load {path}: {_first_line(exc)} "
                             "(is the file a complete ONNX model? re-export it, or check `edgedet doctor`)") from None
        self.inputs = [_spec(i) for i in self.session.get_inputs()]
        self.outputs = [_spec(o) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def _infer_impl(self, feed):
        try:
            values = self.session.run(self._output_names, feed)
        except Exception as exc:
            raise ModelError(f"ONNX Runtime failed while running the model: {_first_line(exc)}") from None
        return dict(zip(self._output_names, values))

    def _close_impl(self) -> None:
        self.session = None

    def describe(self) -> dict:
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__, "providers": self.session.get_providers(),
                "device": ort.get_device()}


def _spec(node) -> IOSpec:
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise ModelError(f"tensor '{node.name}' has type {node.type}, which edgedet does not handle")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return IOSpec(node.name, np.dtype(dtype), shape)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
