import threading
import time

import numpy as np
import pytest

import edgedet
from edgedet.errors import InputError
from edgedet.streams import Pipeline, parse_sources
from edgedet.streams.capture import FrameQueue

av = pytest.importorskip("av")


def test_parse_sources_kinds(tmp_path, image_dir):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    listing = tmp_path / "cams.txt"
    listing.write_text(f"# my cameras\nrtsp://10.0.0.2/live\n{video}\n0\n")
    specs = parse_sources(
        [
            str(image_dir),
            str(video),
            "rtsp://cam/1",
            "http://cam/mjpg",
            "/dev/video2",
            "3",
            str(listing),
            "v4l2src ! videoconvert ! appsink",
        ]
    )
    assert [s.kind for s in specs] == [
        "images",
        "video",
        "network",
        "network",
        "camera",
        "camera",
        "network",
        "video",
        "camera",
        "gstreamer",
    ]
    assert len(specs[0].files) == 2 and not specs[1].live and specs[2].live and specs[4].live
    assert [s.kind for s in parse_sources(str(image_dir / "*.png"))] == ["images"]
    with pytest.raises(InputError, match="unknown scheme 'ftp://'"):
        parse_sources("ftp://x/y")
    with pytest.raises(InputError, match="matches no files"):
        parse_sources(str(tmp_path / "*.mkv"))


def _start_error(model, source) -> str:
    with edgedet.load(model) as det, pytest.raises(InputError) as info:
        Pipeline(det, source).start()
    return str(info.value)


def test_bad_sources_one_clear_error(tiny_nms, tmp_path, sequence):
    assert "does not exist" in _start_error(tiny_nms, str(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert "junk.mp4 cannot be read" in _start_error(tiny_nms, str(junk))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(sequence[0].read_bytes()[:2000])  # header only: no index, no frames
    msg = _start_error(tiny_nms, str(truncated))
    assert "truncated.mp4" in msg and ("cannot be read" in msg or "corrupt" in msg)
    # the sample entry's codec tag (after 'stsd') made unknown
    unknown = tmp_path / "unknown_codec.mp4"
    data = sequence[0].read_bytes()
    at = data.index(b"avc1", data.index(b"stsd"))
    unknown.write_bytes(data[:at] + b"zzzz" + data[at + 4 :])
    assert "codec" in _start_error(tiny_nms, str(unknown))
    assert "cannot open stream http://127.0.0.1:9/" in _start_error(
        tiny_nms, "http://127.0.0.1:9/live"
    )
    assert "camera 57" in _start_error(tiny_nms, "57")
    import re

    import cv2

    if not re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()):  # the pip wheel: no GStreamer
        assert "need an OpenCV built with GStreamer" in _start_error(
            tiny_nms, "videotestsrc ! appsink"
        )


def test_latest_policy_drops_oldest_and_counts():
    lock = threading.Lock()
    q = FrameQueue("latest", 2, lock, threading.Condition(lock))
    stop = threading.Event()
    for i in range(5):
        q.put(i, stop)
    with q.cond:
        assert [q.pop(), q.pop(), q.pop()] == [3, 4, None]
    assert q.dropped == 3


def test_all_policy_blocks_the_producer():
    lock = threading.Lock()
    q = FrameQueue("all", 2, lock, threading.Condition(lock))
    stop = threading.Event()
    done = []
    producer = threading.Thread(target=lambda: [q.put(i, stop) or done.append(i) for i in range(4)])
    producer.start()
    time.sleep(0.3)
    assert done == [0, 1]  # back-pressure: the third put waits for room
    got = []
    deadline = time.time() + 5
    while len(got) < 4 and time.time() < deadline:
        with q.cond:
            item = q.pop()
        got += [] if item is None else [item]
    producer.join(2)
    assert got == [0, 1, 2, 3] and q.dropped == 0  # every frame, in order
