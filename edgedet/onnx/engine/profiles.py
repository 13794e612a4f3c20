"""Optimisation profile shapes from ONNX input shapes and ``--batch min,opt,max``.

edgedet models have one dynamic dimension at most: the batch (dim 0). An ONNX file with a
fixed batch needs no profile; a dynamic one gets one profile whose min/opt/max differ only in
dim 0, which TensorRT receives as ``IOptimizationProfile.set_shape(name, min, opt, max)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedet.contract import TensorSpec
from edgedet.errors import InputError


@dataclass(frozen=True)
class BatchRange:
    """Smallest, tuned-for and largest batch: 1 <= min <= opt <= max."""

    min: int
    opt: int
    max: int

    def __str__(self) -> str:
        return f"{self.min},{self.opt},{self.max}"


@dataclass(frozen=True)
class ProfileShape:
    """One input's shapes in the optimisation profile."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "min": list(self.min),
            "opt": list(self.opt),
            "max": list(self.max),
        }


def parse_batch(text: str | None) -> BatchRange | None:
    """'8' -> 8,8,8; '1,4,8' -> min 1, opt 4, max 8; None stays None. InputError otherwise."""
    if text is None or str(text).strip() == "":
        return None
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise InputError(f"--batch takes N or min,opt,max (e.g. 1,4,8); got '{text}'") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or any(v < 1 for v in values):
        raise InputError(f"--batch takes N or min,opt,max with positive integers; got '{text}'")
    lo, opt, hi = values
    if not lo <= opt <= hi:
        raise InputError(f"--batch {text}: need min <= opt <= max")
    return BatchRange(lo, opt, hi)


def check_input(spec: TensorSpec) -> None:
    """InputError unless only dim 0 of ``spec`` may be dynamic."""
    dynamic = [i for i, d in enumerate(spec.shape) if d < 0]
    if any(i != 0 for i in dynamic):
        raise InputError(
            f"input '{spec.name}' has shape {list(spec.shape)} with dynamic dimensions {dynamic}; "
            "edgedet builds profiles for the batch dimension only: export with fixed H and W"
        )
    if not spec.shape:
        raise InputError(f"input '{spec.name}' is a scalar; edgedet engines take batched tensors")


def optimization_profile(
    inputs: list[TensorSpec], batch: BatchRange | None
) -> tuple[list[ProfileShape], list[str]]:
    """Profile shapes for ``inputs`` (empty list: static model, no profile needed) and notes.

    A fixed-batch model accepts only --batch equal to its batch; a dynamic one without --batch
    is built for batch 1 (1,1,1), with a note saying how to ask for a range. Inputs of rank <= 1
    (the run-time NMS thresholds, float32 [1]) are not batched and take no part in the profile.
    """
    notes: list[str] = []
    for spec in inputs:
        check_input(spec)
    inputs = [s for s in inputs if len(s.shape) > 1]
    dynamic = [s for s in inputs if s.shape[0] < 0]
    fixed = {s.shape[0] for s in inputs if s.shape[0] >= 0}
    if not dynamic:
        if batch and fixed and {batch.min, batch.opt, batch.max} != fixed:
            n = fixed.pop()
            raise InputError(
                f"the model has a fixed batch of {n}; --batch {batch} needs an ONNX with a dynamic"
                f" batch (`edgedet export --dynamic-batch`), or use --batch {n}"
            )
        return [], notes
    if fixed:
        raise InputError(
            f"inputs mix fixed batches {sorted(fixed)} with a dynamic one; export all inputs with"
            " the same batch"
        )
    if batch is None:
        batch = BatchRange(1, 1, 1)
        notes.append(
            "dynamic-batch model built for batch 1 only; pass --batch min,opt,max (e.g. 1,4,8) for"
            " a range"
        )
    shapes = [
        ProfileShape(
            s.name, (batch.min, *s.shape[1:]), (batch.opt, *s.shape[1:]), (batch.max, *s.shape[1:])
        )
        for s in dynamic
    ]
    return shapes, notes
