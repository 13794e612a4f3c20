"""A minimal cuda-python wrapper: device info, device and pinned buffers, a stream, events, graphs.

Only what the TensorRT backend needs, with every call checked. cuda-python returns a tuple
``(cudaError_t, *values)`` from each runtime call (as NVIDIA's TensorRT samples,
samples/python/common_runtime.py, rely on); :meth:`Cuda.call` turns a non-success code into
:class:`CudaError` naming the call. No torch, no PyCUDA.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from edgedet.errors import DependencyError, EdgeDetError


class CudaError(EdgeDetError):
    """A CUDA runtime call failed (no driver, out of memory, capture not permitted, ...)."""


def import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+/13.x) or ``cuda.cudart``
    (older)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            raise DependencyError(
                "the TensorRT backend allocates GPU buffers with cuda-python, which is not"
                " installed: pip install cuda-python (12.x for CUDA 12 / JetPack 6, 13.x for"
                " CUDA 13)"
            ) from None
    return cudart


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    integrated: bool  # Jetson / integrated GPU (shares memory with the CPU)
    total_memory: int


def host_view(ptr: int, nbytes: int) -> np.ndarray:
    """A writable uint8 numpy view of ``nbytes`` of host memory at address ``ptr`` (no copy)."""
    if nbytes == 0:
        return np.zeros(0, np.uint8)
    return np.frombuffer((ctypes.c_ubyte * nbytes).from_address(int(ptr)), dtype=np.uint8)


class Cuda:
    """Checked access to cuda-python's runtime API."""

    def __init__(self, cudart=None) -> None:
        self.rt = cudart or import_cudart()

    def call(self, what: str, result):
        """``(err, *values)`` -> values (None, one value or a tuple); CudaError on failure."""
        err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if err != self.rt.cudaError_t.cudaSuccess:
            raise CudaError(f"CUDA call {what} failed: {self.error_name(err)}")
        return None if not values else values[0] if len(values) == 1 else values

    def error_name(self, err) -> str:
        try:
            ok, name = self.rt.cudaGetErrorName(err)
            return name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # noqa: BLE001 - naming the error must never hide it
            return str(err)

    def device_count(self) -> tuple[int, str | None]:
        """(number of GPUs, None) or (0, why none is usable) - never raises."""
        err, *rest = self.rt.cudaGetDeviceCount()
        if err != self.rt.cudaError_t.cudaSuccess:
            return 0, f"cudaGetDeviceCount: {self.error_name(err)}"
        n = int(rest[0] or 0)
        return n, None if n else "cudaGetDeviceCount found no CUDA device"

    def device_info(self, index: int = 0) -> DeviceInfo:
        prop = self.call("cudaGetDeviceProperties", self.rt.cudaGetDeviceProperties(index))
        name = (
            prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        )
        return DeviceInfo(
            index,
            name.split("\x00")[0].strip(),
            (int(prop.major), int(prop.minor)),
            bool(prop.integrated),
            int(prop.totalGlobalMem),
        )

    def set_device(self, index: int) -> None:
        self.call("cudaSetDevice", self.rt.cudaSetDevice(index))


class DeviceBuffer:
    """``nbytes`` of device memory (cudaMalloc), freed by :meth:`free`."""

    def __init__(self, cuda: Cuda, nbytes: int) -> None:
        self.cuda, self.nbytes = cuda, int(nbytes)
        self.ptr = int(cuda.call("cudaMalloc", cuda.rt.cudaMalloc(max(self.nbytes, 1))))

    def free(self) -> None:
        if self.ptr:
            self.cuda.call("cudaFree", self.cuda.rt.cudaFree(self.ptr))
            self.ptr = 0


class PinnedBuffer:
    """``nbytes`` of page-locked host memory (cudaMallocHost) with numpy views onto it."""

    def __init__(self, cuda: Cuda, nbytes: int) -> None:
        self.cuda, self.nbytes = cuda, int(nbytes)
        self.ptr = int(cuda.call("cudaMallocHost", cuda.rt.cudaMallocHost(max(self.nbytes, 1))))
        self._bytes = host_view(self.ptr, self.nbytes)

    def view(self, dtype, shape: tuple[int, ...]) -> np.ndarray:
        """The first prod(shape) elements as an array of ``dtype`` (no copy; valid until free)."""
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        if n > self.nbytes:
            raise ValueError(f"view of {n} bytes exceeds the {self.nbytes}-byte pinned buffer")
        return self._bytes[:n].view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self._bytes = None
            self.cuda.call("cudaFreeHost", self.cuda.rt.cudaFreeHost(self.ptr))
            self.ptr = 0


class Stream:
    """A non-blocking CUDA stream: TensorRT advises against the default stream for
    execute_async_v3."""

    def __init__(self, cuda: Cuda) -> None:
        self.cuda = cuda
        self.handle = cuda.call(
            "cudaStreamCreateWithFlags",
            cuda.rt.cudaStreamCreateWithFlags(cuda.rt.cudaStreamNonBlocking),
        )

    def __int__(self) -> int:
        return int(self.handle)

    def copy_htod(self, dst: int, src: int, nbytes: int) -> None:
        rt = self.cuda.rt
        self.cuda.call(
            "cudaMemcpyAsync(H2D)",
            rt.cudaMemcpyAsync(
                dst, src, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle
            ),
        )

    def copy_dtoh(self, dst: int, src: int, nbytes: int) -> None:
        rt = self.cuda.rt
        self.cuda.call(
            "cudaMemcpyAsync(D2H)",
            rt.cudaMemcpyAsync(
                dst, src, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle
            ),
        )

    def synchronize(self) -> None:
        self.cuda.call("cudaStreamSynchronize", self.cuda.rt.cudaStreamSynchronize(self.handle))

    def destroy(self) -> None:
        if self.handle is not None:
            self.cuda.call("cudaStreamDestroy", self.cuda.rt.cudaStreamDestroy(self.handle))
            self.handle = None


class Event:
    """A CUDA event for GPU-side timing (cudaEventElapsedTime, milliseconds)."""

    def __init__(self, cuda: Cuda) -> None:
        self.cuda = cuda
        self.handle = cuda.call("cudaEventCreate", cuda.rt.cudaEventCreate())

    def record(self, stream: Stream) -> None:
        self.cuda.call("cudaEventRecord", self.cuda.rt.cudaEventRecord(self.handle, stream.handle))

    def elapsed_ms(self, start: Event) -> float:
        """Milliseconds from ``start`` to this event (both must have completed)."""
        return float(
            self.cuda.call(
                "cudaEventElapsedTime", self.cuda.rt.cudaEventElapsedTime(start.handle, self.handle)
            )
        )

    def destroy(self) -> None:
        if self.handle is not None:
            self.cuda.call("cudaEventDestroy", self.cuda.rt.cudaEventDestroy(self.handle))
            self.handle = None


class GraphExec:
    """An instantiated CUDA graph captured from one stream (trtexec's recipe, sampleDevice.h)."""

    def __init__(self, cuda: Cuda, handle) -> None:
        self.cuda, self.handle = cuda, handle

    @classmethod
    def capture(cls, cuda: Cuda, stream: Stream, work) -> GraphExec | None:
        """Capture ``work()`` on ``stream`` (thread-local mode) and instantiate it.

        Returns None when the work cannot be captured (``work`` returned False or capture was
        invalidated); the stream is left usable, as trtexec's endCaptureOnError does.
        """
        rt = cuda.rt
        cuda.call(
            "cudaStreamBeginCapture",
            rt.cudaStreamBeginCapture(
                stream.handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            ),
        )
        try:
            ok = bool(work())
        except BaseException:
            ok = None
            raise
        finally:
            err, graph = rt.cudaStreamEndCapture(stream.handle)
            if ok is None and err == rt.cudaError_t.cudaSuccess and graph is not None:
                rt.cudaGraphDestroy(graph)
        if not ok or err != rt.cudaError_t.cudaSuccess or graph is None:
            if err == rt.cudaError_t.cudaSuccess and graph is not None:
                rt.cudaGraphDestroy(graph)
            rt.cudaGetLastError()  # clear the sticky capture error, as trtexec does
            return None
        try:
            exec_ = cuda.call("cudaGraphInstantiate", rt.cudaGraphInstantiate(graph, 0))
        finally:
            rt.cudaGraphDestroy(graph)
        return cls(cuda, exec_)

    def launch(self, stream: Stream) -> None:
        self.cuda.call("cudaGraphLaunch", self.cuda.rt.cudaGraphLaunch(self.handle, stream.handle))

    def destroy(self) -> None:
        if self.handle is not None:
            self.cuda.call("cudaGraphExecDestroy", self.cuda.rt.cudaGraphExecDestroy(self.handle))
            self.handle = None
