"""ONNX Runtime backend: TensorRT EP -> CUDA EP -> CPU by default, overridable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgedet.backends.base import Backend, Capabilities, IOSpec
from edgedet.errors import InputError, ModelError, require

NMS_MODES = ("auto", "host", "function")
# How idle intra-op threads wait for work (ONNX Runtime session config keys, documented in its
# include/onnxruntime/core/session/onnxruntime_session_options_config_keys.h):
#   "off": they sleep (session.intra_op.allow_spinning = 0);
#   "run": they busy-wait while a run is in progress and stop the moment the last concurrent run
#          returns (session.force_spinning_stop = 1): the model keeps spinning's speed and the
#          caller's decode and NMS get the cores back;
#   "on":  ONNX Runtime's default: they also keep spinning after a run returns (here ~60 ms of a
#          whole core after each call, measured with time.process_time while the caller sleeps).
SPINNING = ("off", "run", "on")
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "trt": "TensorrtExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def resolve_providers(
    requested: list[str] | tuple[str, ...] | str | None, available: list[str]
) -> list[str]:
    """Map short names (trt, cuda, cpu) to ONNX Runtime providers and check they exist here."""
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)
    if isinstance(requested, str):
        requested = [r for r in requested.split(",") if r]
    out = []
    for name in requested:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in available:
            raise InputError(
                f"ONNX Runtime provider '{name}' is not available here (available:"
                f" {', '.join(available)}); for CUDA/TensorRT install onnxruntime-gpu: pip install"
                " 'edgedet[gpu]'"
            )
        out.append(full)
    return out


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike,
        providers=None,
        threads: int | None = None,
        edgedet_nms: str = "auto",
        spinning: str | bool = "run",
    ) -> None:
        """``edgedet_nms``: how EdgeDetNMS nodes run. "host": the graph is split at them and
        edgedet.nms.host runs them (edgedet/backends/ort_split.py); "function": ONNX Runtime runs
        their standard-op function body; "auto": host when ONNX Runtime runs on the CPU only.
        ``spinning``: how idle intra-op threads wait, one of SPINNING (True means "on", False
        "off"); the default is chosen by benchmarks/ort_spinning.py (docs/performance.md)."""
        super().__init__()
        ort = require("onnxruntime", "ort", "Running ONNX models")
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        if edgedet_nms not in NMS_MODES:
            raise InputError(f"edgedet_nms='{edgedet_nms}' is not one of {', '.join(NMS_MODES)}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # InferenceSession.run is thread-safe: calls from several threads may overlap
        self.capabilities = Capabilities(concurrent_calls=True, intra_op_threads=threads)
        if threads:
            options.intra_op_num_threads = threads
        for key, value in spinning_config(spinning).items():
            options.add_session_config_entry(key, value)
        self.providers = resolve_providers(providers, ort.get_available_providers())
        self.split = None
        if edgedet_nms == "host" or (
            edgedet_nms == "auto" and self.providers == ["CPUExecutionProvider"]
        ):
            self.split = _load_split(
                path,
                lambda model: self._open(ort, model, options, path),
                required=edgedet_nms == "host",
            )
        if self.split is None:
            self.session = self._open(ort, str(path), options, path)
            self.inputs = [_spec(i) for i in self.session.get_inputs()]
            self.outputs = [_spec(o) for o in self.session.get_outputs()]
        else:
            self.session = None
            self.inputs, self.outputs = self.split.specs
        self._output_names = [o.name for o in self.outputs]

    def _open(self, ort, model, options, path: Path):
        """An InferenceSession of a file or serialized model; ModelError naming ``path`` when it
        fails."""
        try:
            return ort.InferenceSession(model, options, providers=self.providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/NotImplemented types
            if "EfficientNMS_TRT" in str(exc):
                raise ModelError(
                    f"{path} ends in NVIDIA's EfficientNMS_TRT plugin (--nms efficient), which only"
                    " TensorRT runs: build an engine with `edgedet build`, or re-export with --nms"
                    " edgedet (or graph) to run it in ONNX Runtime"
                ) from None
            raise ModelError(
                f"ONNX Runtime cannot load {path}: {_first_line(exc)} "
                "(is the file a complete ONNX model? re-export it, or check `edgedet doctor`)"
            ) from None

    def _infer_impl(self, feed):
        try:
            values = (
                self.split.run(feed) if self.split else self.session.run(self._output_names, feed)
            )
        except Exception as exc:
            raise ModelError(
                f"ONNX Runtime failed while running the model: {_first_line(exc)}"
            ) from None
        return dict(zip(self._output_names, values))

    def _close_impl(self) -> None:
        self.session = self.split = None

    def describe(self) -> dict:
        import onnxruntime as ort

        if self.split is None:
            providers, nms = (
                self.session.get_providers(),
                "onnxruntime (function body, where the graph has one)",
            )
        else:
            providers, nms = (
                self.providers,
                f"host ({self.split.nms_steps} EdgeDetNMS node(s), graph split)",
            )
        return {
            "backend": self.name,
            "onnxruntime": ort.__version__,
            "providers": providers,
            "device": ort.get_device(),
            "edgedet_nms": nms,
        }


def spinning_config(spinning: str | bool) -> dict[str, str]:
    """ONNX Runtime session config entries for a ``spinning`` setting (see SPINNING)."""
    if isinstance(spinning, bool):
        spinning = "on" if spinning else "off"
    if spinning == "off":
        return {"session.intra_op.allow_spinning": "0"}
    if spinning == "run":
        return {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"}
    if spinning == "on":
        return {"session.intra_op.allow_spinning": "1"}
    raise InputError(f"spinning='{spinning}' is not one of {', '.join(SPINNING)}")


def _load_split(path: Path, make_session, required: bool):
    """SplitModel of ``path`` when it has EdgeDetNMS nodes in its main graph, else None. A model the
    wire reader cannot take (external data, sparse initializers) runs whole unless ``required``."""
    from edgedet.backends import onnx_wire
    from edgedet.backends.ort_split import SplitModel, is_nms
    from edgedet.nms.opdef import OP_TYPE

    data = path.read_bytes()
    if OP_TYPE.encode() not in data:  # most models have no EdgeDetNMS: no parsing at all
        return None
    try:
        model = onnx_wire.parse_model(data)
        # e.g. only inside a subgraph: leave it to ORT
        if not any(is_nms(n) for n in model.graph.nodes):
            return None
        if model.graph.sparse_initializers:
            raise onnx_wire.WireError("sparse initializers")
        if any(onnx_wire.is_external(t) for t in model.graph.initializers.values()):
            raise onnx_wire.WireError("weights in external data files")
        return SplitModel(model, make_session)
    except onnx_wire.WireError as exc:
        if required:
            raise ModelError(
                f"cannot split {path} at its EdgeDetNMS nodes ({exc}); "
                "run it with edgedet_nms='function'"
            ) from None
        return None


def _spec(node) -> IOSpec:
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise ModelError(
            f"tensor '{node.name}' has type {node.type}, which edgedet does not handle"
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return IOSpec(node.name, np.dtype(dtype), shape)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
