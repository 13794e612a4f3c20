"""The pipelined stream runtime: capture (decode + letterbox) | model | post-process, track, write.

Stages run on threads joined by bounded queues, so decoding and letterboxing of the next frames
overlap the model, and NMS/tracking/encoding of the previous batch overlap it too (PyAV, OpenCV
and ONNX Runtime release the GIL while they work). The model stage gathers frames of all streams
round-robin into one batched call, up to the model's batch (fixed or dynamic); it takes whatever
frames are ready, so a slow stream never stalls the others. Each result is tagged with its
stream, frame index and timestamp. Closing (end of all sources, ``break``, an error or Ctrl-C)
stops the capture threads, lets the frames already decoded run through, and closes every sink,
so an mp4 being written is always finalised.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edgedet.detections import Detections
from edgedet.errors import InputError
from edgedet.preprocess import fit_to_input, to_input
from edgedet.streams.capture import END, POLICIES, CaptureThread, Frame, FrameQueue
from edgedet.streams.sources import SourceSpec, open_reader, parse_sources

STAGE_MEANING = {
    "decode": "demux + decode of one frame to RGB (PyAV/OpenCV/Pillow), capture thread",
    "letterbox": "resize + pad to the model input, capture thread",
    "model": "one batched backend call (layout to NCHW float included), per batch",
    "postprocess": "host NMS (raw models) + boxes back to original pixels, per batch",
    "track": "ByteTrack update, per frame",
    "write": "sinks: annotated video encode and/or JSON Lines, per frame",
    "latency": "capture-to-result: decoder output until the consumer receives the result",
}


@dataclass
class StreamResult:
    """Detections for one frame of one stream. ``track_ids`` (int64 [N], -1 = not tracked) when
    tracking is on; ``image`` is the decoded RGB frame."""

    stream: int
    source: str
    frame: int
    pts: float | None
    detections: Detections
    image: np.ndarray
    capture_time: float
    track_ids: np.ndarray | None = None
    times: dict = field(default_factory=dict)

    @property
    def latency(self) -> float | None:
        return self.times.get("latency")


@dataclass
class StreamStats:
    """Per-stage samples in seconds, frames/drops/reconnects per stream, wall time."""

    stages: dict = field(default_factory=lambda: {s: [] for s in STAGE_MEANING})
    batch_sizes: list = field(default_factory=list)
    frames: int = 0
    started: float = 0.0
    finished: float = 0.0
    per_stream: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """End-to-end throughput: results delivered per second of wall time (all streams)."""
        wall = (self.finished or time.perf_counter()) - self.started
        return self.frames / wall if wall > 0 else 0.0


class Pipeline:
    """Run ``detector`` on ``sources``; iterate to get :class:`StreamResult` in frame order per
    stream.

    policy: "latest" or "all" for every stream; default "latest" for live sources, "all" for files.
    batch: frames per model call; default the model's fixed batch, else one per stream (capped
    by the model's largest batch). sinks: objects with ``write(result)`` and ``close()``.
    model_workers: backend calls in flight at once (results stay in frame order). Default: as many
    as the cores allow for a backend whose calls may overlap (ONNX Runtime with a set number of
    intra-op threads: cores // threads, at most 4), else 1 (TensorRT: one execution context).
    """

    def __init__(
        self,
        detector,
        sources,
        *,
        policy: str | None = None,
        batch: int | None = None,
        track: bool = False,
        min_score: float = 0.0,
        sinks=(),
        max_frames: int | None = None,
        queue_size: int | None = None,
        reconnect_timeout: float = 30.0,
        open_timeout: float = 5.0,
        tracker_options: dict | None = None,
        in_flight: int | None = None,
        model_workers: int | None = None,
    ) -> None:
        if policy is not None and policy not in POLICIES:
            raise InputError(
                f"frame policy '{policy}' is unknown; use one of {', '.join(POLICIES)}"
            )
        self.detector = detector
        self.specs = list(sources) if _all_specs(sources) else parse_sources(sources)
        self.policy, self.min_score, self.sinks = policy, min_score, list(sinks)
        self.max_frames, self.queue_size = max_frames, queue_size
        self.reconnect_timeout, self.open_timeout = reconnect_timeout, open_timeout
        self.batch = self._batch_size(batch)
        self.model_workers = model_workers or default_model_workers(detector.backend)
        if self.model_workers < 1:
            raise InputError(f"model_workers must be 1 or more, not {self.model_workers}")
        live = any(s.live for s in self.specs) if policy is None else policy == "latest"
        # Batches between the model taking frames and the consumer receiving the results. Live:
        # one, so a slow consumer always gets a result of a frame taken when it asked for the
        # previous one (latency <= one consumer period + processing, flat); the capture threads
        # keep dropping stale frames meanwhile. Files: bounded only by the stage queues.
        self.in_flight = in_flight or (1 if live else 1 << 30)
        self._slots = threading.Semaphore(self.in_flight)
        self.trackers = None
        if track:
            from edgedet.streams.track import ByteTracker

            self.trackers = [ByteTracker(**(tracker_options or {})) for _ in self.specs]
        self.stats = StreamStats()
        # stop capturing (end, break, Ctrl-C): in-flight frames finish
        self._stop = threading.Event()
        # a stage failed: nothing waits on a downstream stage any more
        self._abort = threading.Event()
        self._rr = 0
        self._readers = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # a frame arrived in some stream's queue
        self._threads: list[threading.Thread] = []
        self._captures: list[CaptureThread] = []
        self._error: BaseException | None = None
        self._closed = False

    def _batch_size(self, batch: int | None) -> int:
        fixed = self.detector.backend.inputs[0].shape[0]
        limit = self.detector.backend.capabilities.batch_range  # TensorRT: the optimisation profile
        top = min(self.detector.max_batch, limit[1] if limit else 1 << 30)
        if fixed:
            if batch not in (None, fixed):
                raise InputError(
                    f"{self.detector.path.name} has a fixed batch of {fixed}; use batch {fixed} "
                    "or export with --dynamic-batch"
                )
            return fixed
        if batch is not None and not 1 <= batch <= top:
            raise InputError(f"batch {batch} is outside 1..{top} for {self.detector.path.name}")
        return batch or max(1, min(len(self.specs), top))

    # ------------------------------------------------------------------ running

    def __iter__(self):
        return self.run()

    def run(self):
        """Generator of results; closing it (break, exception, Ctrl-C) drains and finalises."""
        try:
            self.start()
            while True:
                batch = self._out.get()
                if batch is END:
                    break
                self._slots.release()
                for item in batch:
                    item.times["latency"] = time.perf_counter() - item.capture_time
                    self.stats.stages["latency"].append(item.times["latency"])
                    self.stats.frames += 1
                    yield item
        finally:
            self.close()
        if self._error is not None:
            raise self._error

    def open(self) -> None:
        """Open every source; a bad one raises here, before any thread starts (create sinks after
        this, and a bad source leaves no output behind)."""
        if self._readers is not None:
            return
        readers = []
        try:
            for spec in self.specs:
                readers.append(open_reader(spec, self.open_timeout))
        except BaseException:
            for r in readers:
                r.close()
            raise
        self._readers = readers

    def start(self) -> None:
        """Open the sources (if not yet) and start the stages."""
        self.open()
        self._queues = []
        for i, (spec, reader) in enumerate(zip(self.specs, self._readers)):
            policy = self.policy or ("latest" if spec.live else "all")
            size = self.queue_size or (1 if policy == "latest" else 2 * self.batch)
            q = FrameQueue(policy, size, self._lock, self._cond)
            self._queues.append(q)
            self._captures.append(
                CaptureThread(
                    i,
                    spec,
                    reader,
                    q,
                    self._prepare,
                    self._stop,
                    self.reconnect_timeout,
                    max_frames=self.max_frames,
                )
            )
        self._post_q: queue.Queue = queue.Queue(maxsize=max(2, self.model_workers))
        self._out: queue.Queue = queue.Queue(maxsize=2)
        self._threads = [
            *self._captures,
            threading.Thread(
                target=self._guard,
                args=(self._model_stage, self._post_q),
                name="edgedet-model",
                daemon=True,
            ),
            threading.Thread(
                target=self._guard,
                args=(self._post_stage, self._out),
                name="edgedet-post",
                daemon=True,
            ),
        ]
        self.stats.started = time.perf_counter()
        for t in self._threads:
            t.start()

    def _prepare(self, rgb: np.ndarray):
        # the manifest's resize, padding and channel order, as Detector.preprocess
        i = self.detector.input
        return fit_to_input(
            rgb, i.height, i.width, i.pad_value, i.resize, i.padding, i.channel_order
        )

    def _guard(self, stage, downstream: queue.Queue) -> None:
        """Run a stage; keep its first error; always tell the next stage that nothing more comes."""
        try:
            stage()
        except BaseException as exc:
            self._error = self._error or exc
            self._abort.set()
            self._stop.set()
        finally:
            _put(downstream, END, self._abort)

    def _model_stage(self) -> None:
        # With several workers the calls overlap (on a CPU backend, one per core: a frame's model
        # call runs while the next one's starts); the futures go downstream in submission order,
        # so the post-process stage still sees batches in frame order.
        pool = (
            ThreadPoolExecutor(self.model_workers, "edgedet-model")
            if self.model_workers > 1
            else None
        )
        try:
            while True:
                while not self._slots.acquire(timeout=0.05):
                    if self._abort.is_set():
                        return
                frames = self._gather()
                if frames is None:
                    return
                outputs = pool.submit(self._infer, frames) if pool else self._infer(frames)
                _put(self._post_q, (frames, outputs), self._abort)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=self._abort.is_set())

    def _infer(self, frames: list[Frame]) -> dict:
        det = self.detector
        canvases = [f.canvas for f in frames]
        canvases += (
            [canvases[-1]] * (self.batch - len(canvases)) if det.backend.inputs[0].shape[0] else []
        )
        t0 = time.perf_counter()
        outputs = det.infer(to_input(canvases, det.input.dtype))
        self.stats.stages["model"].append(time.perf_counter() - t0)
        self.stats.batch_sizes.append(len(frames))
        return outputs

    def _gather(self) -> list[Frame] | None:
        """Up to ``batch`` frames, round-robin over streams; None once every stream has ended."""
        n = len(self._queues)
        with self._cond:
            while True:
                for c in self._captures:
                    if c.error is not None:
                        raise c.error
                frames: list[Frame] = []
                progress = True
                while progress and len(frames) < self.batch:
                    progress = False
                    for k in range(n):
                        f = (
                            self._queues[(self._rr + k) % n].pop()
                            if len(frames) < self.batch
                            else None
                        )
                        if f is not None:
                            frames.append(f)
                            progress = True
                if frames:
                    self._rr = (self._rr + 1) % n
                    return frames
                if all(q.finished for q in self._queues):
                    return None
                self._cond.wait(0.05)

    def _post_stage(self) -> None:
        det = self.detector
        while True:
            item = self._post_q.get()
            if item is END:
                return
            frames, outputs = item
            if isinstance(outputs, Future):
                outputs = outputs.result()
            t0 = time.perf_counter()
            # the tracker's second association needs the low-score boxes; min_score applies after it
            low = (
                min(self.min_score, self.trackers[0].low_thresh)
                if self.trackers
                else self.min_score
            )
            dets = det.postprocess(
                outputs, [f.info for f in frames], [f.source for f in frames], min_score=low
            )
            self.stats.stages["postprocess"].append(time.perf_counter() - t0)
            results = [self._deliver(f, d) for f, d in zip(frames, dets)]
            # while closing, close() drains _out so results still reach the sinks first
            _put(self._out, results, self._abort)

    def _deliver(self, f: Frame, d: Detections) -> StreamResult:
        track_ids = None
        if self.trackers is not None:
            t0 = time.perf_counter()
            track_ids = self.trackers[f.stream].update(d.boxes, d.scores, d.class_ids)
            keep = d.scores >= self.min_score
            d, track_ids = d.filter(self.min_score), track_ids[keep]
            d.meta["track_ids"] = track_ids
            self.stats.stages["track"].append(time.perf_counter() - t0)
        d.meta.update(stream=f.stream, frame=f.index, pts=f.pts)
        result = StreamResult(
            f.stream, f.source, f.index, f.pts, d, f.rgb, f.capture_time, track_ids, dict(f.times)
        )
        if self.sinks:
            t0 = time.perf_counter()
            for sink in self.sinks:
                sink.write(result)
            self.stats.stages["write"].append(time.perf_counter() - t0)
        for stage in ("decode", "letterbox"):
            self.stats.stages[stage].append(f.times[stage])
        return result

    def close(self) -> None:
        """Stop capturing, let decoded frames finish, join the stages, close every sink.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        # opened, never started: the capture threads did not take the readers
        if not self._captures:
            for r in self._readers or []:
                r.close()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        try:
            while any(t.is_alive() for t in self._threads[-2:]):
                try:  # keep the last stage moving while it drains
                    if self._out.get(timeout=0.05) is not END:
                        self._slots.release()
                except queue.Empty:
                    pass
            for t in self._captures:
                t.join(timeout=self.open_timeout + 1)
        finally:
            self.stats.finished = time.perf_counter()
            self._collect()
            errors = []
            for sink in self.sinks:
                try:
                    sink.close()
                except BaseException as exc:  # close them all, report the first failure
                    errors.append(exc)
            if errors and self._error is None:
                self._error = errors[0]

    def _collect(self) -> None:
        for spec, c, q in zip(self.specs, self._captures, getattr(self, "_queues", [])):
            self.stats.per_stream[c.stream] = {
                "source": spec.target,
                "policy": q.policy,
                "frames_decoded": c.count,
                "dropped": q.dropped,
                "reconnects": c.reconnects,
            }

    @property
    def dropped(self) -> int:
        return sum(q.dropped for q in getattr(self, "_queues", []))


def _put(q: queue.Queue, item, stop: threading.Event | None) -> None:
    """Blocking put; with ``stop`` set, give up (and drop the item) instead of blocking forever."""
    while True:
        try:
            q.put(item, timeout=0.05)
            return
        except queue.Full:
            if stop is not None and stop.is_set():
                return


def default_model_workers(backend) -> int:
    """Backend calls to keep in flight: >1 only where calls may overlap (``concurrent_calls``) and
    each uses a known number of intra-op threads, so the workers do not oversubscribe the cores."""
    caps = backend.capabilities
    threads = caps.intra_op_threads
    if not caps.concurrent_calls or not threads:
        return 1
    return max(1, min(4, (os.cpu_count() or 1) // threads))


def _all_specs(sources) -> bool:
    return (
        isinstance(sources, (list, tuple))
        and bool(sources)
        and all(isinstance(s, SourceSpec) for s in sources)
    )


def stream(detector, source, **options) -> Pipeline:
    """``for result in stream(detector, "video.mp4"): ...`` — see :class:`Pipeline`."""
    return Pipeline(detector, source, **options)
