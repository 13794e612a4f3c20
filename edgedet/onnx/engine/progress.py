"""Builder progress through TensorRT's IProgressMonitor (TensorRT 10.0+).

The Python API documents a subclass of ``trt.IProgressMonitor`` that calls the base
``__init__`` and implements ``phase_start(phase_name, parent_phase, num_steps)``,
``step_complete(phase_name, step) -> bool`` (False cancels the build) and
``phase_finish(phase_name)`` (samples/python/simple_progress_monitor). TensorRT may call
these from several threads, so the monitor only appends and prints.
"""

from __future__ import annotations

import threading
import time


class ProgressLog:
    """What the monitor saw: phases with their nesting depth; ``cancel()`` stops the build."""

    def __init__(self, say=None, max_depth: int = 1) -> None:
        self.say, self.max_depth = say, max_depth
        self.depth: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.cancelled = False
        self._lock = threading.Lock()

    def start(self, phase: str, parent: str | None, steps: int) -> None:
        with self._lock:
            depth = self.depth.get(parent, -1) + 1 if parent else 0
            self.depth[phase], self.started[phase] = depth, time.perf_counter()
        if self.say and depth <= self.max_depth:
            self.say(f"{'  ' * depth}{phase} ({steps} steps)")

    def step(self, phase: str, step: int) -> bool:
        return not self.cancelled

    def finish(self, phase: str) -> None:
        with self._lock:
            depth = self.depth.pop(phase, 0)
            seconds = time.perf_counter() - self.started.pop(phase, time.perf_counter())
        if self.say and depth <= self.max_depth and seconds >= 1.0:
            self.say(f"{'  ' * depth}{phase} done in {seconds:.1f} s")

    def cancel(self) -> None:
        self.cancelled = True


def make_progress_monitor(trt_module, log: ProgressLog):
    """A ``trt.IProgressMonitor`` forwarding to ``log``; None when this TensorRT has no such
    class."""
    base = getattr(trt_module, "IProgressMonitor", None)
    if base is None:
        return None

    class _Monitor(base):
        def __init__(self):
            base.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                log.start(phase_name, parent_phase, num_steps)
            except KeyboardInterrupt:  # cannot cancel from here: step_complete does it
                log.cancel()

        def step_complete(self, phase_name, step):
            try:
                return log.step(phase_name, step)
            except KeyboardInterrupt:
                log.cancel()
                return False

        def phase_finish(self, phase_name):
            try:
                log.finish(phase_name)
            except KeyboardInterrupt:
                log.cancel()

    return _Monitor()
