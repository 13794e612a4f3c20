"""Stand-ins for TensorRT's runtime API and cuda-python, so the backend's own logic runs on CPU.

Nothing here claims to be TensorRT. Each fake follows a documented behaviour, cited inline:
  * cuda-python: every runtime call returns ``(cudaError_t, *values)`` (TensorRT's
    samples/python/common_runtime.py relies on this); the real cuda-python enums are reused.
    Device memory is host memory here, so copies are real memmoves; a stream runs work at once
    unless it is capturing, when work is recorded into a graph (cudaStreamBeginCapture /
    EndCapture / GraphInstantiate / GraphLaunch). Events read a fake clock that each
    operation advances, so elapsed times are deterministic.
  * TensorRT: Runtime.deserialize_cuda_engine returns None on failure and reports through the
    logger (Runtime docs); a new execution context uses profile 0 (NvInferRuntime.h,
    createExecutionContext); set_input_shape returns False outside the profile
    (pyCore.cpp lambdas::setInputShape returns bool); output shapes are known after the input
    shapes are set (IExecutionContext.get_tensor_shape); execute_async_v3 enqueues on the
    given stream and returns a bool. IPluginRegistry.load_library returns None on failure.
The "engine" is a JSON description behind a magic prefix; its single kernel writes contract
NMS outputs derived from each image's mean, so chunking and padding mistakes show up.
"""

from __future__ import annotations

import ctypes
import json
from enum import IntEnum
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from cuda.bindings import runtime as real_rt

from edgedet.manifest import InputInfo, Manifest, write_manifest
from edgedet.nms.params import NMSParams

MAGIC = b"FAKEPLAN"
OK = real_rt.cudaError_t.cudaSuccess


# ---------------------------------------------------------------------------------- cuda-python


class FakeGPU:
    """Memory, streams, events and graphs of one pretend device."""

    def __init__(self, name="Fake GPU", cc=(8, 7), integrated=False):
        self.name, self.cc, self.integrated = name, cc, integrated
        self.buffers: dict[int, ctypes.Array] = {}
        self.streams: dict[int, dict] = {}
        self.clock = 0.0
        self.next_handle = 1000
        self.calls: list[str] = []

    def alloc(self, n):
        buf = ctypes.create_string_buffer(n)
        self.buffers[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def handle(self):
        self.next_handle += 1
        return self.next_handle

    def submit(self, stream: int, op, cost=0.001):
        """Run ``op`` now, or record it when ``stream`` is capturing (then replayed by a graph)."""
        s = self.streams[stream]
        if s["capturing"] is not None:
            s["capturing"].append((op, cost))
        else:
            op()
            self.clock += cost


class FakeCudart:
    """cuda.bindings.runtime with the calls the backend makes."""

    cudaError_t = real_rt.cudaError_t
    cudaMemcpyKind = real_rt.cudaMemcpyKind
    cudaStreamCaptureMode = real_rt.cudaStreamCaptureMode
    cudaStreamNonBlocking = real_rt.cudaStreamNonBlocking

    def __init__(self, gpu: FakeGPU | None, fail: dict | None = None):
        self.gpu, self.fail = gpu, fail or {}
        self.graphs: dict[int, list] = {}

    def _err(self, name):
        self.gpu and self.gpu.calls.append(name)
        return self.fail.get(name, OK)

    def cudaGetErrorName(self, err):
        return real_rt.cudaGetErrorName(err)

    def cudaGetLastError(self):
        return (OK,)

    def cudaGetDeviceCount(self):
        if self.gpu is None:
            return (real_rt.cudaError_t.cudaErrorNoDevice, None)
        return (OK, 1)

    def cudaGetDeviceProperties(self, index):
        g = self.gpu
        return (
            OK,
            SimpleNamespace(
                name=g.name.encode() + b"\x00\x00",
                major=g.cc[0],
                minor=g.cc[1],
                integrated=int(g.integrated),
                totalGlobalMem=8 << 30,
            ),
        )

    def cudaSetDevice(self, index):
        return (self._err("cudaSetDevice"),)

    def cudaMalloc(self, n):
        err = self._err("cudaMalloc")
        return (err, self.gpu.alloc(n) if err == OK else None)

    cudaMallocHost = cudaMalloc

    def cudaFree(self, ptr):
        self.gpu.buffers.pop(int(ptr))
        return (self._err("cudaFree"),)

    cudaFreeHost = cudaFree

    def cudaStreamCreateWithFlags(self, flags):
        h = self.gpu.handle()
        self.gpu.streams[h] = {"capturing": None}
        return (self._err("cudaStreamCreateWithFlags"), h)

    def cudaStreamDestroy(self, h):
        self.gpu.streams.pop(int(h))
        return (OK,)

    def cudaStreamSynchronize(self, h):
        return (self._err("cudaStreamSynchronize"),)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        self.gpu.submit(
            int(stream), lambda: ctypes.memmove(int(dst), int(src), int(n)), cost=n * 1e-6
        )
        return (self._err("cudaMemcpyAsync"),)

    def cudaEventCreate(self):
        return (OK, {"t": None})

    def cudaEventRecord(self, event, stream):
        self.gpu.submit(int(stream), lambda: event.__setitem__("t", self.gpu.clock), cost=0.0)
        return (OK,)

    def cudaEventElapsedTime(self, start, end):
        return (OK, end["t"] - start["t"])

    def cudaEventDestroy(self, event):
        return (OK,)

    def cudaStreamBeginCapture(self, stream, mode):
        self.gpu.streams[int(stream)]["capturing"] = []
        return (OK,)

    def cudaStreamEndCapture(self, stream):
        ops = self.gpu.streams[int(stream)]["capturing"]
        self.gpu.streams[int(stream)]["capturing"] = None
        if ops is None or self.fail.get("capture"):
            return (real_rt.cudaError_t.cudaErrorStreamCaptureInvalidated, None)
        h = self.gpu.handle()
        self.graphs[h] = ops
        return (OK, h)

    def cudaGraphInstantiate(self, graph, flags):
        return (OK, ("exec", graph))

    def cudaGraphLaunch(self, exec_, stream):
        for op, cost in self.graphs[exec_[1]]:
            self.gpu.submit(int(stream), op, cost)
        self.gpu.calls.append("cudaGraphLaunch")
        return (OK,)

    def cudaGraphDestroy(self, graph):
        return (OK,)

    def cudaGraphExecDestroy(self, exec_):
        self.graphs.pop(exec_[1], None)
        return (OK,)


# ---------------------------------------------------------------------------------- TensorRT


class Severity(IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class TensorIOMode(IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8
    BF16 = 7


class ILogger:
    Severity = Severity

    def __init__(self):
        pass


def plan_bytes(
    batch=(1, 2, 4), size=8, k=4, fixed: int | None = None, thresholds: bool = False
) -> bytes:
    """A fake plan: one 'images' input (dynamic batch with profile ``batch``, or ``fixed``), and
    with ``thresholds`` the static float32 [1] inputs score_threshold / iou_threshold
    (--runtime-thresholds).
    """
    desc = {"size": size, "k": k, "profile": list(batch), "fixed": fixed, "thresholds": thresholds}
    return MAGIC + json.dumps(desc).encode()


class FakeEngine:
    def __init__(self, trt, desc):
        self.trt, self.d = trt, desc
        s, k, fixed = desc["size"], desc["k"], desc["fixed"]
        b = fixed if fixed else -1
        self.io = [
            ("images", TensorIOMode.INPUT, DataType.FLOAT, (b, 3, s, s)),
            ("num_dets", TensorIOMode.OUTPUT, DataType.INT32, (b, 1)),
            ("det_boxes", TensorIOMode.OUTPUT, DataType.FLOAT, (b, k, 4)),
            ("det_scores", TensorIOMode.OUTPUT, DataType.FLOAT, (b, k)),
            ("det_classes", TensorIOMode.OUTPUT, DataType.INT32, (b, k)),
        ]
        if desc.get("thresholds"):
            self.io[1:1] = [
                (n, TensorIOMode.INPUT, DataType.FLOAT, (1,))
                for n in ("score_threshold", "iou_threshold")
            ]
        self.num_optimization_profiles = 1
        self.device_memory_size_v2 = 1 << 20
        self.num_layers = 3
        self.name = "fake"
        self.contexts = 0

    @property
    def num_io_tensors(self):
        return len(self.io)

    def _t(self, name):
        return next(t for t in self.io if t[0] == name)

    def get_tensor_name(self, i):
        return self.io[i][0]

    def get_tensor_mode(self, name):
        return self._t(name)[1]

    def get_tensor_dtype(self, name):
        return self._t(name)[2]

    def get_tensor_shape(self, name):
        return list(self._t(name)[3])

    def get_tensor_profile_shape(self, name, index):
        lo, opt, hi = self.d["profile"]
        rest = self._t(name)[3][1:]
        return [[lo, *rest], [opt, *rest], [hi, *rest]]

    def create_execution_context(self):
        self.contexts += 1
        return FakeContext(self)


class FakeContext:
    refuse_capture = False  # True: execute_async_v3 returns False while the stream is capturing

    def __init__(self, engine: FakeEngine):
        self.e = engine
        # profile 0 is active; dynamic shapes unset until set_input_shape
        self.batch = engine.d["fixed"]
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name, shape):
        lo, _, hi = self.e.d["profile"]
        if self.e.d["fixed"]:
            ok = shape[0] == self.e.d["fixed"]
        else:
            ok = lo <= shape[0] <= hi
        if ok:
            self.batch = shape[0]
        else:
            self.e.trt.log(Severity.ERROR, f"setInputShape: {list(shape)} is outside the profile")
        return ok

    def get_tensor_shape(self, name):
        shape = self.e._t(name)[3]
        if len(shape) <= 1:  # the static [1] threshold inputs
            return list(shape)
        return [self.batch if self.batch else -1, *shape[1:]]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream):
        gpu = self.e.trt.gpu
        if self.batch is None or len(self.addresses) != len(self.e.io):
            self.e.trt.log(Severity.ERROR, "enqueueV3: shapes or addresses not set")
            return False
        if self.refuse_capture and gpu.streams[int(stream)]["capturing"] is not None:
            self.e.trt.log(
                Severity.ERROR, "enqueueV3: operation not permitted when stream is capturing"
            )
            return False
        b, s, k = self.batch, self.e.d["size"], self.e.d["k"]
        addr = dict(self.addresses)

        def kernel():
            images = np.ctypeslib.as_array(
                (ctypes.c_float * (b * 3 * s * s)).from_address(addr["images"])
            ).reshape(b, 3, s, s)
            mean = images.reshape(b, -1).mean(axis=1).astype(np.float32)
            _view(addr["num_dets"], np.int32, (b, 1))[:] = 1
            _view(addr["det_boxes"], np.float32, (b, k, 4))[:] = mean[:, None, None]
            _view(addr["det_scores"], np.float32, (b, k))[:] = mean[:, None]
            _view(addr["det_classes"], np.int32, (b, k))[:] = 0

        gpu.submit(int(stream), kernel, cost=0.5)
        self.e.trt.executions += 1
        return True


def _view(ptr, dtype, shape):
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return (
        np.frombuffer((ctypes.c_ubyte * n).from_address(ptr), np.uint8).view(dtype).reshape(shape)
    )


class FakeRegistry:
    """IPluginRegistry: load_library registers the creators listed in a fake library file."""

    def __init__(self):
        self.creators: list[SimpleNamespace] = []

    @property
    def all_creators(self):
        return list(self.creators)

    def load_library(self, path):
        data = open(path, "rb").read()
        if not data.startswith(b"FAKEPLUGIN"):
            return None  # documented: None when the library cannot be loaded
        for c in json.loads(data[len(b"FAKEPLUGIN") :]):
            self.creators.append(
                SimpleNamespace(name=c[0], plugin_version=c[1], plugin_namespace=c[2])
            )
        return object()

    def get_creator(self, name, version, namespace=""):
        return next(
            (
                c
                for c in self.creators
                if (c.name, c.plugin_version, c.plugin_namespace) == (name, version, namespace)
            ),
            None,
        )


def fake_plugin_library(path, creators=(("EdgeDetNMS", "1", "edgedet"),)):
    path.write_bytes(b"FAKEPLUGIN" + json.dumps([list(c) for c in creators]).encode())
    return path


class FakeTRTModule:
    """The module-level names the backend touches (edgedet.trt.api.RUNTIME)."""

    __version__ = "10.3.0.30"
    ILogger = ILogger
    TensorIOMode = TensorIOMode
    DataType = DataType
    LayerInformationFormat = SimpleNamespace(JSON=1, ONELINE=0)
    ProfilingVerbosity = SimpleNamespace(DETAILED=2)

    def __init__(self, gpu: FakeGPU):
        self.gpu = gpu
        self.loggers = []
        self.registry = FakeRegistry()
        self.runtimes = 0
        self.executions = 0
        module = self

        class Runtime:
            def __init__(self, logger):
                module.loggers.append(logger)
                module.runtimes += 1
                self.engine_host_code_allowed = False
                self.num_DLA_cores = 0
                self.DLA_core = -1

            def deserialize_cuda_engine(self, data):
                if not bytes(data).startswith(MAGIC):
                    module.log(
                        Severity.ERROR,
                        "IRuntime::deserializeCudaEngine: Error Code 1: Serialization"
                        " (Serialization assertion plan->header.magicTag == rt::kPLAN_MAGIC_TAG"
                        " failed.)",
                    )
                    return None
                return FakeEngine(module, json.loads(bytes(data)[len(MAGIC) :]))

        self.Runtime = Runtime

    def log(self, severity, msg):
        for logger in self.loggers:
            logger.log(severity, msg)

    def get_plugin_registry(self):
        return self.registry


# ---------------------------------------------------------------------------------- engine files


def tensorrt_section(version="10.3.0.30", cc="8.7", gpu="Fake GPU", **extra) -> dict:
    """A manifest `tensorrt` section as edgedet/onnx/engine/build.py writes it."""
    return {
        "version": version,
        "module": "tensorrt",
        "precision": "strongly-typed",
        "version_compatible": False,
        "exclude_lean_runtime": False,
        "hardware_compatibility_level": "NONE",
        "gpu": {"name": gpu, "compute_capability": cc},
        "profiles": [],
        "plugins": [],
        "dla_core": None,
        **extra,
    }


def write_engine(
    path: Path, plan: bytes, section: dict | None = None, batch: int = -1, size: int = 8
) -> Path:
    """Write a (fake) plan and, when ``section`` is given, its manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(plan)
    if section is not None:
        write_manifest(
            path,
            Manifest(
                family="tiny",
                model="fake",
                class_names=["a", "b", "c"],
                input=InputInfo("images", (batch, 3, size, size)),
                output_kind="nms",
                nms=NMSParams(max_output_boxes=4),
                tensorrt=section,
            ),
        )
    return path
