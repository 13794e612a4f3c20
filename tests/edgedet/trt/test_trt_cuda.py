"""The cuda-python wrapper: error checking, host views, graph capture fallback.

The real cuda-python is used where no GPU is needed (error names, device count without a
driver); allocation and capture go through trt_fakes.FakeCudart (see its docstring).
"""

import ctypes

import numpy as np
import pytest
import trt_fakes

from edgedet.trt.cuda import Cuda, CudaError, GraphExec, PinnedBuffer, Stream, host_view


def test_call_checks_the_error_code():
    from cuda.bindings import runtime as rt

    cuda = Cuda(rt)
    assert cuda.call("x", (rt.cudaError_t.cudaSuccess, 5)) == 5
    assert cuda.call("x", (rt.cudaError_t.cudaSuccess, 1, 2)) == (1, 2)
    assert cuda.call("x", (rt.cudaError_t.cudaSuccess,)) is None
    with pytest.raises(CudaError, match="CUDA call cudaMalloc failed: cudaErrorMemoryAllocation"):
        cuda.call("cudaMalloc", (rt.cudaError_t.cudaErrorMemoryAllocation, None))


def test_device_count_never_raises_on_the_real_runtime():
    """Real cuda-python: on a machine without a GPU/driver this reports why instead of raising."""
    cuda = Cuda()
    count, why = cuda.device_count()
    assert count >= 0
    if count == 0:
        assert why and why.startswith("cudaGetDeviceCount")


def test_host_view_is_a_writable_alias():
    buf = ctypes.create_string_buffer(16)
    view = host_view(ctypes.addressof(buf), 16)
    view[:4] = [1, 2, 3, 4]
    assert buf.raw[:4] == b"\x01\x02\x03\x04" and host_view(0, 0).size == 0


def test_pinned_views_and_bounds():
    cuda = Cuda(trt_fakes.FakeCudart(trt_fakes.FakeGPU()))
    pinned = PinnedBuffer(cuda, 64)
    v = pinned.view(np.float32, (2, 8))
    v[:] = 1.5
    assert pinned.view(np.float32, (4,)).tolist() == [1.5] * 4
    with pytest.raises(ValueError, match="exceeds"):
        pinned.view(np.float32, (3, 8))
    pinned.free()
    pinned.free()  # idempotent


def test_capture_failure_returns_none_and_stream_stays_usable():
    gpu = trt_fakes.FakeGPU()
    cuda = Cuda(trt_fakes.FakeCudart(gpu))
    stream = Stream(cuda)
    assert GraphExec.capture(cuda, stream, lambda: False) is None
    assert gpu.streams[int(stream)]["capturing"] is None
    ran = []
    g = GraphExec.capture(
        cuda, stream, lambda: gpu.submit(int(stream), lambda: ran.append(1)) or True
    )
    assert ran == [] and g is not None
    g.launch(stream)
    g.launch(stream)
    assert ran == [1, 1]
    g.destroy()


def test_capture_exception_ends_capture():
    gpu = trt_fakes.FakeGPU()
    cuda = Cuda(trt_fakes.FakeCudart(gpu))
    stream = Stream(cuda)

    def boom():
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        GraphExec.capture(cuda, stream, boom)
    assert gpu.streams[int(stream)]["capturing"] is None
