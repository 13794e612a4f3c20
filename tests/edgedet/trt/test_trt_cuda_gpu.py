"""The cuda-python wrapper on a real GPU (marked `cuda`; skipped with the reason without one).

Not yet run in this project: no GPU was available to this work.
"""

import numpy as np
import pytest

from edgedet.trt.cuda import Cuda, DeviceBuffer, Event, GraphExec, PinnedBuffer, Stream

pytestmark = pytest.mark.cuda


def test_round_trip_events_and_graph():
    cuda = Cuda()
    cuda.set_device(0)
    info = cuda.device_info(0)
    assert info.name and info.compute_capability >= (5, 0)
    n = 1 << 20
    host_in, host_out, dev = PinnedBuffer(cuda, n), PinnedBuffer(cuda, n), DeviceBuffer(cuda, n)
    stream, start, end = Stream(cuda), Event(cuda), Event(cuda)
    host_in.view(np.uint8, (n,))[:] = np.arange(n, dtype=np.uint64).astype(np.uint8)
    start.record(stream)
    stream.copy_htod(dev.ptr, host_in.ptr, n)
    stream.copy_dtoh(host_out.ptr, dev.ptr, n)
    end.record(stream)
    stream.synchronize()
    np.testing.assert_array_equal(host_out.view(np.uint8, (n,)), host_in.view(np.uint8, (n,)))
    assert end.elapsed_ms(start) >= 0

    host_out.view(np.uint8, (n,))[:] = 0
    graph = GraphExec.capture(
        cuda, stream, lambda: stream.copy_dtoh(host_out.ptr, dev.ptr, n) or True
    )
    assert graph is not None and host_out.view(np.uint8, (n,)).max() == 0  # captured, not run
    graph.launch(stream)
    stream.synchronize()
    np.testing.assert_array_equal(host_out.view(np.uint8, (n,)), host_in.view(np.uint8, (n,)))
    for r in (
        graph.destroy,
        dev.free,
        host_in.free,
        host_out.free,
        start.destroy,
        end.destroy,
        stream.destroy,
    ):
        r()
