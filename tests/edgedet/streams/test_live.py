"""A live HTTP-MJPEG camera on the loopback (tests/helpers/mjpeg_sender.py, a separate process)."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgedet
from edgedet.streams import Pipeline

pytest.importorskip("av")
SENDER = Path(__file__).parents[2] / "helpers" / "mjpeg_sender.py"
FPS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sender(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(SENDER), str(port), str(FPS)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_live_latency_flat_with_slow_consumer_and_reconnect(tiny_nms):
    from mjpeg_sender import read_stamp

    port = free_port()
    sender = start_sender(port)
    try:
        with edgedet.load(tiny_nms) as det:
            pipe = Pipeline(det, f"http://127.0.0.1:{port}/", reconnect_timeout=10)
            it = iter(pipe)
            latency, age, frames = [], [], []
            t_end = time.perf_counter() + 3.0
            for r in it:  # consumer at ~20 fps, slower than the 30 fps source
                latency.append(r.latency)
                age.append(time.time() - read_stamp(r.image))
                frames.append(r.frame)
                time.sleep(0.05)
                if time.perf_counter() > t_end:
                    break
            dropped = pipe.dropped
            sender.kill()
            sender.wait()
            time.sleep(0.5)
            sender = start_sender(port)  # the camera comes back on the same address
            after = [r.frame for _, r in zip(range(10), it)]
            it.close()
    finally:
        sender.kill()
        sender.wait()
    interval = 1 / FPS
    for name, xs in (("capture-to-result", latency), ("sender-to-result", age)):
        xs = np.asarray(xs[5:])  # after start-up
        p50, p99 = np.percentile(xs, 50), np.percentile(xs, 99)
        third = len(xs) // 3
        print(f"{name}: p50 {p50 * 1e3:.1f} ms p99 {p99 * 1e3:.1f} ms, first third {np.median(xs[:third]) * 1e3:.1f} "
              f"ms, last third {np.median(xs[-third:]) * 1e3:.1f} ms; {len(xs)} frames")
        assert p99 <= p50 + 2 * interval, name
        assert np.median(xs[-third:]) <= np.median(xs[:third]) + interval, name  # no growth
    assert dropped > 0 and dropped >= frames[-1] + 1 - len(frames) - 2  # drops counted
    assert len(after) == 10 and pipe.stats.per_stream[0]["reconnects"] >= 1
