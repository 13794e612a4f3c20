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
    proc = subprocess.Popen(
        [sys.executable, str(SENDER), str(port), str(FPS)], stdout=subprocess.PIPE, text=True
    )
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
        print(
            f"{name}: p50 {p50 * 1e3:.1f} ms p99 {p99 * 1e3:.1f} ms, first third"
            f" {np.median(xs[:third]) * 1e3:.1f} ms, last third {np.median(xs[-third:]) * 1e3:.1f}"
            f" ms; {len(xs)} frames"
        )
        assert p99 <= p50 + 2 * interval, name
        assert np.median(xs[-third:]) <= np.median(xs[:third]) + interval, name  # no growth
    assert dropped > 0 and dropped >= frames[-1] + 1 - len(frames) - 2  # drops counted
    assert len(after) == 10 and pipe.stats.per_stream[0]["reconnects"] >= 1


def test_cli_ctrl_c_on_live_stream_finalises_outputs(tiny_nms, tmp_path):
    """SIGINT to `edgedet infer` on a camera that never ends: exit 130, the mp4 and JSONL are
    complete."""
    import json
    import os
    import signal

    import av

    port = free_port()
    sender = start_sender(port)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgedet.cli",
            "infer",
            str(tiny_nms),
            f"http://127.0.0.1:{port}/",
            "-o",
            str(out),
            "--min-score",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list(tmp_path.glob("out/.stream0.mp4.*")):
            time.sleep(0.2)  # the temporary mp4 appears with the first written frame
        time.sleep(1.0)
        cli.send_signal(signal.SIGINT)
        stdout, stderr = cli.communicate(timeout=30)
    finally:
        cli.kill()
        sender.kill()
        sender.wait()
    assert cli.returncode == 130, stderr
    assert stdout.startswith("interrupted: ") and "Traceback" not in stderr
    records = [json.loads(ln) for ln in (out / "detections.jsonl").read_text().splitlines()]
    with av.open(str(out / "stream0.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(records) > 5
    assert sorted(p.name for p in out.iterdir()) == ["detections.jsonl", "stream0.mp4"]


def test_stream_that_stays_down_fails_with_one_line(tiny_nms):
    from edgedet.errors import InputError

    port = free_port()
    sender = start_sender(port)
    got = 0
    try:
        with (
            edgedet.load(tiny_nms) as det,
            pytest.raises(InputError, match=r"lost: no frame for 1 s"),
        ):
            for _ in Pipeline(det, f"http://127.0.0.1:{port}/", reconnect_timeout=1.0):
                got += 1
                if got == 3:
                    sender.kill()  # and it never comes back
    finally:
        sender.kill()
        sender.wait()
    assert got >= 3


def test_slow_stream_does_not_stall_a_fast_one(tiny_nms, sequence):
    """A 2 fps camera batched with a video file: the file's frames flow at the model's pace."""
    port = free_port()
    sender = subprocess.Popen(
        [sys.executable, str(SENDER), str(port), "2"], stdout=subprocess.PIPE, text=True
    )
    assert sender.stdout.readline().strip() == "ready"
    counts = {0: 0, 1: 0}
    try:
        with edgedet.load(tiny_nms) as det:
            for r in Pipeline(det, [str(sequence[0]), f"http://127.0.0.1:{port}/"], max_frames=30):
                counts[r.stream] += 1
                if counts[0] == 30:
                    break
    finally:
        sender.kill()
        sender.wait()
    # waiting for the camera would pace the file at 2 fps: as many camera frames as file frames
    assert counts[0] == 30 and counts[1] < 10, counts
