"""TensorRT backend: a plan file + manifest -> named numpy outputs, on full TensorRT or the lean
runtime.

Order of work, so every refusal names its cause before TensorRT is asked anything:
  1. read the plan (empty / JSON-prefixed / ONNX -> ModelError) and the manifest (hash check)
  2. import TensorRT (``tensorrt``, ``tensorrt_lean`` or ``tensorrt_lean_bindings``) and cuda-python
  3. compare manifest vs this machine (TensorRT release, GPU compute capability, plugin files
     and hashes) -> CompatibilityError listing every difference
  4. load plugin libraries, then ``Runtime.deserialize_cuda_engine``
  5. allocate device + pinned host buffers once, at the profile's largest batch, and bind
     their addresses (``set_tensor_address``) once
Each call: copy into pinned memory, H2D, ``execute_async_v3`` (or a CUDA graph captured for
that batch size) on the backend's own non-blocking stream, D2H, synchronise. CUDA events
split the time into H2D / GPU compute / D2H (``last_timings``).

Nothing here imports torch. Not executed on real TensorRT in this project (no GPU machine
with TensorRT was available); see docs/tensorrt.md for what was and was not run.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedet import contract
from edgedet.backends.base import Backend, Capabilities, IOSpec
from edgedet.errors import CompatibilityError, InputError, ManifestError, ModelError
from edgedet.fileio import sha256_bytes
from edgedet.manifest import Manifest, manifest_path, read_manifest
from edgedet.trt import compat, plugins
from edgedet.trt.cuda import Cuda, CudaError, DeviceBuffer, Event, GraphExec, PinnedBuffer, Stream
from edgedet.trt.engine_file import read_plan
from edgedet.trt.loader import LogBook, TensorRT, import_tensorrt, make_logger

# The TensorRT names this module and edgedet.trt.* call are listed in edgedet.trt.api.RUNTIME.
_NUMPY_DTYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}


@dataclass
class TensorInfo:
    """One engine I/O tensor: dims of -1 are dynamic; profile = (min, opt, max) for inputs."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


class TensorRTBackend(Backend):
    """Runs one TensorRT engine; same interface as the ONNX Runtime backend.

    ``cuda_graph``: replay a CUDA graph per batch size (captured on first use, one execution
    context per graph). ``plugins``: extra plugin library paths or folders to search first.
    ``device``: CUDA device index. ``check_plugin_hash``: refuse plugin libraries whose sha256
    differs from the one the engine was built with.
    """

    name = "tensorrt"

    def __init__(
        self,
        path: str | os.PathLike,
        cuda_graph: bool = False,
        device: int = 0,
        plugins=(),
        check_plugin_hash: bool = True,
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._graphs: dict[int, tuple[object, GraphExec]] = {}
        self._graph_failed = False
        self._shape_cache: dict[tuple[int, int], dict[str, tuple[int, ...]]] = {}
        self._cuda_graph = bool(cuda_graph)
        self.last_timings: dict[str, float] = {}
        plan = read_plan(self.path)
        self.manifest = _engine_manifest(self.path, plan)
        self.trt = import_tensorrt()
        self.cuda = Cuda()
        self.device, gpu_error = _probe_device(self.cuda, device)
        needs = _check_compatible(self, plugins, check_plugin_hash, gpu_error)
        # Without a manifest nothing says whether the plan is version-compatible (it may then carry
        # host code: the lean runtime, serialized plugins); a caller who names plugins vouches for
        # the engine.
        allow_host_code = needs.version_compatible if needs is not None else bool(plugins)
        # no manifest to compare against: the missing GPU is the whole story
        if self.device is None:
            raise CompatibilityError(
                f"TensorRT engines need an NVIDIA GPU, and none is usable here ({gpu_error}); "
                "run on a machine with a GPU and driver, or use the ONNX model with ONNX Runtime"
            )
        self.book = LogBook()
        self._logger = make_logger(self.trt, self.book, echo=_warn if verbose else None)
        if self.manifest is not None and self.manifest.nms_implementation == "efficient":
            _init_nvidia_plugins(self)
        self._runtime, self._engine = self._deserialize(plan, needs, allow_host_code)
        self._context = self._create_context()
        self.tensors = _read_tensors(self.trt.module, self._engine)
        self.inputs = [
            IOSpec(t.name, t.dtype, _spec_shape(t.shape)) for t in self.tensors if t.is_input
        ]
        self.outputs = [
            IOSpec(t.name, t.dtype, _spec_shape(t.shape)) for t in self.tensors if not t.is_input
        ]
        self.min_batch, self.max_batch = _batch_range(self.tensors)
        self._allocate()

    # ---------------------------------------------------------------- loading

    def _deserialize(self, plan: bytes, needs: compat.EngineNeeds | None, allow_host_code: bool):
        """Runtime + engine; ModelError quoting TensorRT's logged error when it refuses the plan."""
        trt = self.trt.module
        self.cuda.set_device(self.device.index)
        runtime = trt.Runtime(self._logger)
        if allow_host_code:
            # Version-compatible plans carry host code (the lean runtime, serialized plugins);
            # TensorRT loads it only when allowed (Runtime.engine_host_code_allowed, default False).
            runtime.engine_host_code_allowed = True
        if needs is not None and needs.dla_core is not None:
            if needs.dla_core >= runtime.num_DLA_cores:
                raise CompatibilityError(
                    f"{self.path} runs on DLA core {needs.dla_core}, but this device has "
                    f"{runtime.num_DLA_cores} DLA cores: {compat.REBUILD}"
                )
            runtime.DLA_core = needs.dla_core
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise ModelError(
                f"TensorRT {self.trt.version} could not deserialise {self.path}: "
                f"{self.book.last_error()} (a truncated or foreign file, or an engine from another "
                f"TensorRT/GPU: {compat.REBUILD})"
            )
        return runtime, engine

    def _create_context(self):
        context = self._engine.create_execution_context()
        if context is None:  # e.g. out of device memory for the activations
            raise ModelError(
                f"TensorRT could not create an execution context for {self.path}:"
                f" {self.book.last_error()}"
            )
        return context

    def _allocate(self) -> None:
        """Device + pinned buffers sized for the largest batch of the profile; addresses bound once.
        On any failure, whatever was allocated is released before the error propagates."""
        self._device: dict[str, DeviceBuffer] = {}
        self._host: dict[str, PinnedBuffer] = {}
        self.events: list[Event] = []
        self.stream = None
        try:
            self._set_batch(self._context, self.max_batch)
            self.stream = Stream(self.cuda)
            self.events = [Event(self.cuda) for _ in range(4)]
            for t in self.tensors:
                nbytes = (
                    int(np.prod(_concrete(self._context.get_tensor_shape(t.name), t.name)))
                    * t.dtype.itemsize
                )
                self._device[t.name] = DeviceBuffer(self.cuda, nbytes)
                self._host[t.name] = PinnedBuffer(self.cuda, nbytes)
            self._bind(self._context)
        except BaseException:
            self._close_impl()
            raise
        self._batch = self.max_batch

    def _bind(self, context) -> None:
        for t in self.tensors:
            if not context.set_tensor_address(t.name, self._device[t.name].ptr):
                raise ModelError(
                    f"TensorRT refused the address of tensor '{t.name}': {self.book.last_error()}"
                )

    def _set_batch(self, context, batch: int) -> None:
        for t in self.tensors:
            if t.is_input and t.profile is not None:  # static inputs need no shape
                shape = _input_shape(t, batch)
                if not context.set_input_shape(t.name, shape):
                    raise InputError(
                        f"TensorRT refused input shape {list(shape)} for '{t.name}' "
                        f"(profile {t.profile}): {self.book.last_error()}"
                    )

    # ---------------------------------------------------------------- running

    @property
    def engine(self):
        """The deserialised ``ICudaEngine`` (for inspection; owned by this backend)."""
        return self._engine

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            batch_range=(self.min_batch, self.max_batch), stage_timings=True, cuda_graph=True
        )

    @property
    def cuda_graph(self) -> bool:
        return self._cuda_graph

    @cuda_graph.setter
    def cuda_graph(self, on: bool) -> None:
        """Switch CUDA graph replay on/off (captured graphs are dropped when switching off)."""
        self._cuda_graph = bool(on)
        if not on:
            self._drop_graphs()

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run in chunks of at most the profile's max batch; pad a chunk below its min batch."""
        t0 = time.perf_counter()
        totals: dict[str, float] = {}
        batch = _feed_batch(feed, self.inputs)
        parts = []
        for start in range(0, batch, self.max_batch):
            n = min(self.max_batch, batch - start)
            # run-time NMS thresholds are [1], not per image
            chunk = {
                s.name: (
                    feed[s.name]
                    if s.name in contract.THRESHOLD_INPUTS
                    else feed[s.name][start : start + n]
                )
                for s in self.inputs
            }
            out = self._run(chunk, max(n, self.min_batch))
            parts.append({k: v[:n] for k, v in out.items()})
            for k, v in self.last_timings.items():
                totals[k] = totals.get(k, 0.0) + v
        totals["host_ms"] = (time.perf_counter() - t0) * 1e3
        totals["chunks"] = len(parts)
        self.last_timings = totals
        return (
            parts[0]
            if len(parts) == 1
            else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        )

    def _run(self, feed: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        """One execution at ``batch`` (>= the feed's rows: the rest repeat the last row): H2D,
        execute (or graph), D2H, sync; GPU timings in last_timings."""
        graph = self._graph_for(batch) if self._cuda_graph and not self._graph_failed else None
        if graph is None and self._batch != batch:
            self._set_batch(self._context, batch)
            self._batch = batch
        shapes = self._shapes(graph[0] if graph else self._context, batch)
        for t in self.tensors:
            # straight into pinned memory; padding rows (below the profile's min) repeat the last
            if t.is_input:
                dst, src = self._host[t.name].view(t.dtype, shapes[t.name]), feed[t.name]
                np.copyto(dst[: len(src)], src, casting="no")
                dst[len(src) :] = src[-1:]
        e = self.events
        e[0].record(self.stream)
        for t in self.tensors:
            if t.is_input:
                self.stream.copy_htod(
                    self._device[t.name].ptr, self._host[t.name].ptr, _nbytes(t, shapes)
                )
        e[1].record(self.stream)
        if graph is not None:
            graph[1].launch(self.stream)
        elif not self._context.execute_async_v3(int(self.stream)):
            raise ModelError(f"TensorRT failed to run {self.path}: {self.book.last_error()}")
        e[2].record(self.stream)
        for t in self.tensors:
            if not t.is_input:
                self.stream.copy_dtoh(
                    self._host[t.name].ptr, self._device[t.name].ptr, _nbytes(t, shapes)
                )
        e[3].record(self.stream)
        self.stream.synchronize()
        self.last_timings = {
            "h2d_ms": e[1].elapsed_ms(e[0]),
            "gpu_compute_ms": e[2].elapsed_ms(e[1]),
            "d2h_ms": e[3].elapsed_ms(e[2]),
            "gpu_total_ms": e[3].elapsed_ms(e[0]),
        }
        return {
            t.name: self._host[t.name].view(t.dtype, shapes[t.name]).copy()
            for t in self.tensors
            if not t.is_input
        }

    def _shapes(self, context, batch: int) -> dict[str, tuple[int, ...]]:
        """Concrete I/O shapes at ``batch``; outputs as TensorRT infers them on ``context``
        (IExecutionContext.get_tensor_shape after set_input_shape), cached per context and batch."""
        key = (id(context), batch)
        if key not in self._shape_cache:
            self._shape_cache[key] = {
                t.name: (
                    _input_shape(t, batch)
                    if t.is_input
                    else _concrete(context.get_tensor_shape(t.name), t.name)
                )
                for t in self.tensors
            }
        return self._shape_cache[key]

    def _graph_for(self, batch: int):
        """(context, graph) for ``batch``: a dedicated context per graph, since a graph freezes the
        shapes and addresses it was captured with (trtexec captures after one warm-up enqueue)."""
        if batch in self._graphs:
            return self._graphs[batch]
        context = self._create_context()
        self._set_batch(context, batch)
        self._bind(context)
        # warm-up: keeps initialisation out of the graph
        if not context.execute_async_v3(int(self.stream)):
            raise ModelError(f"TensorRT failed to run {self.path}: {self.book.last_error()}")
        self.stream.synchronize()
        graph = GraphExec.capture(
            self.cuda, self.stream, lambda: context.execute_async_v3(int(self.stream))
        )
        if graph is None:
            self._graph_failed = True
            warnings.warn(
                f"{self.path}: this engine cannot be captured in a CUDA graph (TensorRT: "
                f"{self.book.last_error('capture refused')}); running without graphs",
                stacklevel=3,
            )
            return None
        self._graphs[batch] = (context, graph)
        return self._graphs[batch]

    # ---------------------------------------------------------------- teardown and reports

    def _drop_graphs(self) -> None:
        for context, graph in self._graphs.values():
            graph.destroy()
            self._shape_cache = {k: v for k, v in self._shape_cache.items() if k[0] != id(context)}
        self._graphs.clear()

    def _close_impl(self) -> None:
        errors = []
        stream = [self.stream.destroy] if self.stream is not None else []
        for release in (
            self._drop_graphs,
            *[b.free for b in self._device.values()],
            *[b.free for b in self._host.values()],
            *[e.destroy for e in self.events],
            *stream,
        ):
            try:
                release()
            except CudaError as exc:  # keep releasing the rest; report once
                errors.append(str(exc))
        self._context = self._engine = self._runtime = None
        if errors:
            warnings.warn(f"releasing CUDA resources of {self.path}: {errors[0]}", stacklevel=2)

    def describe(self) -> dict:
        built = self.manifest.tensorrt.version if self.manifest and self.manifest.tensorrt else None
        return {
            "backend": self.name,
            "tensorrt": str(self.trt.version),
            "module": self.trt.name,
            "flavour": self.trt.flavour,
            "device": self.device.name,
            "compute_capability": "{}.{}".format(*self.device.compute_capability),
            "engine_built_with": built,
            "batch_range": [self.min_batch, self.max_batch],
            "cuda_graph": self._cuda_graph and not self._graph_failed,
        }


# -------------------------------------------------------------------- helpers (no TensorRT state)


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=2)


def _engine_manifest(path: Path, plan: bytes) -> Manifest | None:
    """The sidecar manifest checked against the plan bytes in memory; None (with a warning) if
    absent."""
    if not manifest_path(path).exists():
        warnings.warn(
            f"{path} has no manifest ({manifest_path(path).name}): TensorRT version, GPU and"
            " plugins cannot be checked before loading, and inputs/outputs are read from the"
            " engine",
            stacklevel=3,
        )
        return None
    manifest = read_manifest(path, verify=False)
    recorded = manifest.artifact.get("sha256")
    if recorded and (len(plan) != manifest.artifact.get("bytes") or sha256_bytes(plan) != recorded):
        raise ManifestError(
            f"{path} does not match its manifest {manifest_path(path)} (size/sha256 differ): the"
            " engine was changed or truncated after it was built; rebuild it with `edgedet build`"
        )
    if not manifest.tensorrt:
        warnings.warn(
            f"{manifest_path(path)} has no 'tensorrt' section (not written by `edgedet build`): "
            "compatibility cannot be checked before loading",
            stacklevel=3,
        )
    return manifest


def _probe_device(cuda: Cuda, index: int):
    """(DeviceInfo of GPU ``index``, None) or (None, why no GPU is usable).

    Checked before creating a TensorRT Runtime: without a CUDA driver the lean 11.4 Runtime
    constructor only logs an error and the object crashes on first use (seen on the dev machine).
    """
    count, why = cuda.device_count()
    if count == 0:
        return None, why
    if not 0 <= index < count:
        raise InputError(
            f"CUDA device {index} does not exist; this machine has {count} (0..{count - 1})"
        )
    return cuda.device_info(index), None


def _check_compatible(
    backend: TensorRTBackend, extra_plugins, check_hash: bool, gpu_error: str | None
) -> compat.EngineNeeds | None:
    """Compare the manifest with this machine, load plugins; returns the engine's needs (or
    None)."""
    section = backend.manifest.tensorrt if backend.manifest else None
    if not section:  # nothing to compare; plugins the caller names are still needed to deserialise
        _load_explicit_plugins(
            backend.trt,
            extra_plugins,
            backend.device.compute_capability if backend.device else None,
        )
        return None
    needs = compat.EngineNeeds.from_manifest(section)
    dev = backend.device
    here = compat.Machine(
        backend.trt.version,
        backend.trt.flavour,
        dev.compute_capability if dev else None,
        dev.name if dev else None,
        gpu_error,
    )
    resolved = [
        plugins.resolve(rec, backend.path.parent, extra_plugins, backend.trt.version)
        for rec in needs.plugins
    ]
    problems = [p for r in resolved for p in plugins.problems(r, check_hash)]
    cc = dev.compute_capability if dev else None
    problems += [
        p
        for r in resolved
        if r.path is not None or r.record.serialized
        if (p := plugins.arch_problem(r.path, cc, r.record.architectures, r.record.file))
    ]
    compat.require_compatible(str(backend.path), needs, here, problems)
    for w in compat.hardware_warnings(needs, here):
        warnings.warn(w, stacklevel=3)
    _load_plugins(backend.trt, resolved)
    return needs


def _init_nvidia_plugins(backend: TensorRTBackend) -> None:
    """Engines with EfficientNMS_TRT need NVIDIA's libnvinfer_plugin registered before
    deserialisation; the lean runtime does not ship it."""
    init = getattr(backend.trt.module, "init_libnvinfer_plugins", None)
    if init is None or not init(backend._logger, ""):
        raise CompatibilityError(
            f"{backend.path} uses NVIDIA's EfficientNMS_TRT plugin, which this TensorRT "
            f"({backend.trt.flavour}) cannot provide (libnvinfer_plugin missing; the lean runtime "
            "never has it): run it with full TensorRT, or rebuild from an --nms edgedet export"
        )


def _load_explicit_plugins(trt: TensorRT, paths, cc: tuple[int, int] | None) -> None:
    """Load each library the caller named (a folder: the EdgeDetNMS plugin in it) - engines without
    a manifest."""
    from edgedet.nms import opdef

    for p in paths:
        path = Path(p)
        path = path / opdef.PLUGIN_LIBRARY if path.is_dir() else path
        problem = plugins.arch_problem(path, cc)
        if problem:
            raise CompatibilityError(problem)
        plugins.load_library(trt.module, path)


def _load_plugins(trt: TensorRT, resolved: list[plugins.Resolved]) -> None:
    """Load every non-embedded plugin library and check its creators are registered."""
    for r in resolved:
        if r.record.serialized or r.path is None:
            continue
        plugins.load_library(trt.module, r.path)
        missing = plugins.missing_creators(trt.module, r.record.creators)
        if missing:
            raise CompatibilityError(
                f"plugin library {r.path} loaded but did not register"
                f" {', '.join(map(str, missing))}; it is a different plugin build:"
                f" {plugins.BUILD_HINT}"
            )


def _read_tensors(trt, engine) -> list[TensorInfo]:
    """I/O tensors of ``engine`` with numpy dtypes and (for inputs) profile 0's shapes."""
    names = {getattr(trt.DataType, k): v for k, v in _NUMPY_DTYPES.items()}
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        trt_dtype = engine.get_tensor_dtype(name)
        if trt_dtype not in names:
            raise ModelError(
                f"engine tensor '{name}' has type {trt_dtype}, which numpy cannot hold; "
                "export the model with FP32/FP16/INT32 inputs and outputs"
            )
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = (
            tuple(tuple(int(d) for d in dims) for dims in engine.get_tensor_profile_shape(name, 0))
            if is_input and -1 in shape
            else None
        )
        out.append(TensorInfo(name, is_input, np.dtype(names[trt_dtype]), shape, profile))
    return out


def _batch_range(tensors: list[TensorInfo]) -> tuple[int, int]:
    """(min, max) batch of profile 0 (fixed engines: (B, B)); only the first dim may be dynamic.
    The run-time NMS thresholds (static float32 [1], not per image) do not count, as in _feed_batch.
    """
    lo, hi = 1, None
    for t in tensors:
        if not t.is_input or t.name in contract.THRESHOLD_INPUTS or len(t.shape) <= 1:
            continue
        if t.profile is None:
            lo, hi = t.shape[0], t.shape[0]
            continue
        if any(d == -1 for d in t.shape[1:]):
            raise ModelError(
                f"engine input '{t.name}' has dynamic dimensions {list(t.shape)}; edgedet engines"
                " may only have a dynamic batch (rebuild from an ONNX with fixed H and W)"
            )
        lo, hi = max(lo, t.profile[0][0]), min(hi or t.profile[2][0], t.profile[2][0])
    return int(lo), int(hi or lo)


def _feed_batch(feed: dict[str, np.ndarray], inputs: list[IOSpec]) -> int:
    sizes = {feed[s.name].shape[0] for s in inputs if s.name not in contract.THRESHOLD_INPUTS}
    if len(sizes) != 1:
        raise InputError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def _input_shape(t: TensorInfo, batch: int) -> tuple[int, ...]:
    """``t``'s shape with a dynamic first dimension set to ``batch``."""
    return (batch, *t.shape[1:]) if t.shape and t.shape[0] == -1 else tuple(t.shape)


def _spec_shape(shape: tuple[int, ...]) -> tuple[int | None, ...]:
    return tuple(None if d < 0 else d for d in shape)


def _concrete(dims, name: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise ModelError(
            f"engine output '{name}' has a data-dependent shape {list(shape)}; edgedet needs"
            " outputs whose shape follows from the input shape (pad NMS outputs to K)"
        )
    return shape


def _nbytes(t: TensorInfo, shapes: dict[str, tuple[int, ...]]) -> int:
    return int(np.prod(shapes[t.name])) * t.dtype.itemsize
