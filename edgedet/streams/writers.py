"""Sinks for stream results: annotated video (mp4 through PyAV) and JSON Lines.

Both write to a temporary file beside the target and rename it on ``close``, so a reader never
sees a half-written file; the pipeline closes every sink on the way out (end of stream, error,
Ctrl-C), which finalises the mp4 (encoder flushed, index written).
"""

from __future__ import annotations

import contextlib
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from edgedet.errors import require
from edgedet.fileio import atomic_path


class JsonlSink:
    """One line per frame: {"stream", "source", "frame", "pts", "detections": [{"box", "score",
    "class_id", "label", "track_id"?}]}; boxes (x1, y1, x2, y2) in original pixels."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._fh = self._stack.enter_context(open(tmp, "w"))

    def write(self, result) -> None:
        self._fh.write(json.dumps(to_record(result)) + "\n")

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._stack.close()


def to_record(result) -> dict:
    d = result.detections
    dets = []
    for k, (box, score, cls) in enumerate(
        zip(d.boxes.tolist(), d.scores.tolist(), d.class_ids.tolist())
    ):
        rec = {
            "box": [round(v, 2) for v in box],
            "score": round(score, 5),
            "class_id": cls,
            "label": d._name(cls),
        }
        if result.track_ids is not None:
            rec["track_id"] = int(result.track_ids[k])
        dets.append(rec)
    return {
        "stream": result.stream,
        "source": result.source,
        "frame": result.frame,
        "pts": None if result.pts is None else round(result.pts, 6),
        "detections": dets,
    }


class VideoSink:
    """Annotated mp4 per stream: ``paths[stream]``. H.264 (libx264) where the FFmpeg build has it,
    else MPEG-4 Part 2. Frame times follow the source's pts (or frame index / fps), so dropped
    frames keep the video's timing right."""

    def __init__(
        self,
        paths: dict[int, str | os.PathLike],
        fps: dict[int, float | None] | None = None,
        min_score: float = 0.0,
    ) -> None:
        self.av = require("av", "streams", "Writing annotated video")
        self.paths = {k: Path(v) for k, v in paths.items()}
        self.fps = fps or {}
        self.min_score = min_score
        self._open: dict[int, tuple] = {}
        self._stack = contextlib.ExitStack()

    def _start(self, stream: int, height: int, width: int):
        tmp = self._stack.enter_context(atomic_path(self.paths[stream], suffix=".mp4"))
        container = self.av.open(str(tmp), "w")
        codec = "libx264" if "libx264" in self.av.codecs_available else "mpeg4"
        fps = self.fps.get(stream) or 30.0
        vs = container.add_stream(codec, rate=Fraction(round(fps * 1000), 1000))
        vs.width, vs.height, vs.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        # frame times in ms, taken from the source's pts
        vs.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":
            vs.options = {"preset": "veryfast", "crf": "23"}
        state = [container, vs, -1, fps]
        self._open[stream] = state
        return state

    def write(self, result) -> None:
        if result.stream not in self.paths:
            return
        h, w = result.image.shape[:2]
        state = self._open.get(result.stream) or self._start(result.stream, h, w)
        container, vs, last, fps = state
        rgb = draw(result, self.min_score)
        # odd sides (yuv420p needs even), or a reconnect at another size
        if (h, w) != (
            vs.height,
            vs.width,
        ):
            import cv2

            rgb = cv2.resize(rgb, (vs.width, vs.height), interpolation=cv2.INTER_AREA)
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        pts = round((result.pts if result.pts is not None else result.frame / fps) * 1000)
        frame.pts = max(pts, last + 1)  # the muxer needs strictly increasing times
        frame.time_base = Fraction(1, 1000)
        state[2] = frame.pts
        for packet in vs.encode(frame):
            container.mux(packet)

    def close(self) -> None:
        try:
            for container, vs, _, _ in self._open.values():
                for packet in vs.encode(None):  # flush the encoder
                    container.mux(packet)
                container.close()
        finally:
            self._stack.close()  # renames the finished files into place


def draw(result, min_score: float = 0.0) -> np.ndarray:
    """The frame with boxes, labels and (when tracking) ``#id`` under each box."""
    import cv2

    d = result.detections
    canvas = d.draw(result.image, min_score=min_score)
    if result.track_ids is not None:
        for box, tid, score in zip(d.boxes, result.track_ids, d.scores):
            if tid >= 0 and score >= min_score:
                x1, _, _, y2 = (int(round(v)) for v in box)
                cv2.putText(
                    canvas,
                    f"#{tid}",
                    (x1 + 2, max(y2 - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.5,
                    (255, 255, 255),
                    1,
                    cv2.LINE_AA,
                )
    return canvas
