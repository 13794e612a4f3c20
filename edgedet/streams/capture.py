"""Capture threads: one per stream, decode + letterbox, feeding a bounded queue under a frame
policy.

Policies:
  ``all``     every frame; a full queue blocks the decoder (back-pressure). Default for files.
  ``latest``  a queue of ``size`` (1-2) frames; a new frame evicts the oldest, counted in
              ``dropped``. Default for live sources, so latency stays flat however slow the
              consumer is (a growing buffer is the classic "RTSP latency" bug).
A live source that ends or fails after it has delivered frames is reopened with exponential
back-off (``reconnects`` counts them) until ``reconnect_timeout`` passes with no frame.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgedet.errors import InputError
from edgedet.streams.sources import Reader, SourceSpec, open_reader

POLICIES = ("latest", "all")
END = object()  # sentinel: the stream has ended


@dataclass
class Frame:
    """One decoded frame. ``index`` counts every frame the decoder produced (dropped ones too);
    ``pts`` is the source's presentation time in seconds (None for images/cameras);
    ``capture_time`` is time.perf_counter() when the decoder returned it."""

    stream: int
    index: int
    pts: float | None
    capture_time: float
    rgb: np.ndarray
    source: str
    canvas: np.ndarray | None = None  # letterboxed model input (HWC uint8)
    info: object = None  # LetterboxInfo
    times: dict = field(default_factory=dict)  # stage -> seconds spent on this frame


class FrameQueue:
    """A bounded FIFO with a drop-oldest (``latest``) or blocking (``all``) put.

    ``cond`` (shared by all streams' queues) wakes the consumer when any queue gets a frame; each
    queue's ``room`` condition, on the same lock, wakes only its own producer when a frame leaves,
    so a pop does not wake every blocked capture thread.
    """

    def __init__(
        self, policy: str, size: int, lock: threading.Lock, cond: threading.Condition
    ) -> None:
        """``cond`` must be a Condition on ``lock``."""
        if policy not in POLICIES:
            raise InputError(
                f"frame policy '{policy}' is unknown; use one of {', '.join(POLICIES)}"
            )
        self.policy, self.size, self.cond = policy, max(1, size), cond
        self.room = threading.Condition(lock)
        self.items: collections.deque = collections.deque()
        self.dropped = 0
        self.ended = False

    def put(self, item, stop: threading.Event) -> None:
        with self.cond:
            if self.policy == "latest":
                while len(self.items) >= self.size:
                    self.items.popleft()
                    self.dropped += 1
            else:
                while len(self.items) >= self.size and not stop.is_set():
                    self.room.wait(0.05)
            self.items.append(item)
            self.cond.notify()

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def pop(self):
        """The oldest frame or None (caller holds ``cond``)."""
        if self.items:
            item = self.items.popleft()
            self.room.notify()
            return item
        return None

    @property
    def finished(self) -> bool:
        return self.ended and not self.items


class CaptureThread(threading.Thread):
    """Reads one source into a FrameQueue; ``prepare(rgb) -> (canvas, info)`` runs here too."""

    def __init__(
        self,
        stream: int,
        spec: SourceSpec,
        reader: Reader,
        queue: FrameQueue,
        prepare: Callable,
        stop: threading.Event,
        reconnect_timeout: float = 30.0,
        backoff: tuple[float, float] = (0.25, 4.0),
        max_frames: int | None = None,
    ) -> None:
        super().__init__(name=f"edgedet-capture-{stream}", daemon=True)
        self.stream, self.spec, self.reader, self.queue = stream, spec, reader, queue
        self.prepare, self.stop = prepare, stop
        self.reconnect_timeout, self.backoff, self.max_frames = (
            reconnect_timeout,
            backoff,
            max_frames,
        )
        self.count = 0
        self.reconnects = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # handed to the consumer, raised there
            self.error = exc
        finally:
            if self.reader is not None:
                self.reader.close()
            self.queue.end()

    def _run(self) -> None:
        last_frame = time.perf_counter()
        delay = self.backoff[0]
        while not self.stop.is_set():
            if self.reader is None:  # reconnecting
                try:
                    self.reader = open_reader(self.spec)
                except InputError:
                    if time.perf_counter() - last_frame > self.reconnect_timeout:
                        raise InputError(
                            f"stream {self.spec.target} lost: no frame for"
                            f" {self.reconnect_timeout:.0f} s and reconnecting failed; check the"
                            " sender"
                        ) from None
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                self.reconnects += 1
            got = self._pump()
            if got:
                last_frame, delay = time.perf_counter(), self.backoff[0]
            if not self.spec.live or self._enough():
                return
            self.reader.close()
            self.reader = None

    def _pump(self) -> int:
        """Decode until the source ends, ``stop`` is set or max_frames; returns frames read."""
        got = 0
        frames = self.reader.frames()
        while not self.stop.is_set() and not self._enough():
            t0 = time.perf_counter()
            try:
                rgb, pts = next(frames)
            except StopIteration:
                break
            t1 = time.perf_counter()
            canvas, info = self.prepare(rgb)
            t2 = time.perf_counter()
            frame = Frame(
                self.stream,
                self.count,
                pts,
                t1,
                rgb,
                self.spec.target,
                canvas,
                info,
                {"decode": t1 - t0, "letterbox": t2 - t1},
            )
            self.count += 1
            got += 1
            self.queue.put(frame, self.stop)
        return got

    def _enough(self) -> bool:
        return self.max_frames is not None and self.count >= self.max_frames
