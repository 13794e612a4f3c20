"""The one small interface every inference backend implements.

A backend owns one loaded artifact (ONNX file or TensorRT engine) and turns a
feed of named numpy arrays into named numpy outputs. Everything else (reading
images, letterboxing, NMS on the host, mapping boxes back) lives in
:class:`edgedet.detector.Detector`, so backends stay thin and interchangeable.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from edgedet.errors import InputError


@dataclass(frozen=True)
class IOSpec:
    """A graph input or output as the backend sees it; None marks a dynamic dimension."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers beyond ``infer``, declared so that callers (bench, streams, the CLI)
    read it instead of probing for attributes."""

    # (smallest, largest) batch the loaded artifact runs, when the backend knows a limit the graph's
    # input shape does not show (a TensorRT optimisation profile); None: any batch the shape allows
    batch_range: tuple[int, int] | None = None
    # ``last_timings`` holds per-stage ms of the last infer (h2d_ms, gpu_compute_ms, d2h_ms)
    stage_timings: bool = False
    cuda_graph: bool = False  # the ``cuda_graph`` attribute switches CUDA graph replay on and off
    # calls from several threads may overlap (streams keep more than one in flight)
    concurrent_calls: bool = False
    intra_op_threads: int | None = None  # threads one call uses, when fixed at load; None: unknown


class Backend(abc.ABC):
    """Context-managed inference over one artifact.

    Subclasses implement ``_infer_impl`` and ``_close_impl``; the public methods do
    the checks, so every backend refuses a wrong feed the same way. A backend with
    more to offer overrides ``capabilities``.
    """

    name = "backend"
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.inputs: list[IOSpec] = []
        self.outputs: list[IOSpec] = []
        self.last_timings: dict[str, float] = {}  # filled when capabilities.stage_timings
        self._closed = False

    def infer(
        self, feed: dict[str, np.ndarray], check_values: bool = True
    ) -> dict[str, np.ndarray]:
        """``check_values=False`` skips the NaN/Inf scan of float inputs (a pass over every
        element), for
        callers whose input is finite by construction (pixels / 255 from Model.preprocess)."""
        if self._closed:
            raise InputError(
                f"the model was closed ({self.name} backend); load it again with edgedet.load"
            )
        for spec in self.inputs:
            if spec.name not in feed:
                raise InputError(
                    f"missing input '{spec.name}'; the model takes {[s.name for s in self.inputs]}"
                )
            check_shape(spec, feed[spec.name], check_values)
        return self._infer_impl(feed)

    def close(self) -> None:
        if not self._closed:
            self._close_impl()
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        """Where and how inference runs (device, providers, precision), for reports."""
        return {"backend": self.name}

    @abc.abstractmethod
    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _close_impl(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        pass


def check_shape(spec: IOSpec, array: np.ndarray, check_values: bool = True) -> None:
    """InputError unless ``array`` fits ``spec`` (fixed dims equal, dtype equal; finite unless not
    ``check_values``)."""
    if array.dtype != spec.dtype:
        raise InputError(
            f"input '{spec.name}' has dtype {array.dtype}; the model expects {np.dtype(spec.dtype)}"
        )
    shape = tuple(array.shape)
    ok = len(shape) == len(spec.shape) and all(
        d is None or d == s for d, s in zip(spec.shape, shape)
    )
    if not ok:
        want = "x".join("?" if d is None else str(d) for d in spec.shape)
        raise InputError(
            f"input '{spec.name}' has shape {'x'.join(map(str, shape))}; the model expects {want}"
        )
    if check_values and array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(f"input '{spec.name}' contains NaN or Inf values")
