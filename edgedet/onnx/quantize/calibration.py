"""Calibration images read through the runtime's own pre-processing (one code path)."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgedet.errors import EdgeDetError, InputError
from edgedet.manifest import InputInfo
from edgedet.preprocess import fit_to_input, list_images, read_image, to_input

# The TensorRT Developer Guide (INT8 calibration) finds ~500 images sufficient for ImageNet
# classifiers; below 300 edgedet still calibrates, with a warning.
RECOMMENDED_IMAGES = 300


@dataclass
class CalibrationSet:
    """A deterministic selection of calibration images and the input spec to letterbox them to."""

    files: list[Path]
    input: InputInfo
    used: int | None = (
        None  # images actually read by the last pass over batches() (unreadable ones skipped)
    )

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike, input_info: InputInfo, size: int | None = None
    ) -> CalibrationSet:
        """Sorted image files; with ``size``, an evenly spaced subset (covers the whole folder)."""
        return cls.from_files(list_images(folder), input_info, size, str(folder))

    @classmethod
    def from_files(
        cls, files: list[Path], input_info: InputInfo, size: int | None = None, where: str = ""
    ) -> CalibrationSet:
        if size is not None:
            if size < 1:
                raise InputError(f"--calib-size must be >= 1, got {size}")
            files = evenly_spaced(files, size)
        if len(files) < RECOMMENDED_IMAGES:
            warnings.warn(
                f"calibrating with {len(files)} images from {where}; {RECOMMENDED_IMAGES} or more"
                " are recommended for stable INT8 ranges",
                stacklevel=3,
            )
        return cls(files, input_info)

    def fingerprint(self) -> str:
        """sha256 over file names and contents: the calibration cache key part for this set."""
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f.name.encode())
            digest.update(hashlib.sha256(f.read_bytes()).digest())
        digest.update(repr((self.input.shape[2:], self.input.pad_value, self.input.dtype)).encode())
        return digest.hexdigest()

    def batches(
        self, progress: Callable[[int, int], None] | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yield {"images": [1, 3, H, W]} per readable image; unreadable ones are skipped with a
        warning."""
        used = 0
        for i, f in enumerate(self.files):
            try:
                rgb = read_image(f)
            except EdgeDetError as exc:
                warnings.warn(f"calibration: skipped {exc}", stacklevel=2)
                continue
            canvas, _ = fit_to_input(
                rgb,
                self.input.height,
                self.input.width,
                self.input.pad_value,
                self.input.resize,
                self.input.padding,
                self.input.channel_order,
            )
            used += 1
            if progress:
                progress(i + 1, len(self.files))
            yield {self.input.name: to_input([canvas], self.input.dtype)}
        self.used = used
        if used == 0:
            raise InputError(f"none of the {len(self.files)} calibration images could be read")


def evenly_spaced(files: list, count: int) -> list:
    """``count`` items spread over the whole list (keeps its order); all of them if fewer."""
    if count >= len(files):
        return list(files)
    idx = np.linspace(0, len(files) - 1, count).round().astype(int)
    return [files[i] for i in idx]


# Held-out images for measuring agreement: a fifth of the folder, at least 16 (a smaller set moves
# the matched fraction in steps of several percent), at most 200 (the measurement runs per variant).
HOLDOUT_FRACTION, HOLDOUT_MIN, HOLDOUT_MAX = 0.2, 16, 200


def split_holdout(
    folder: str | os.PathLike,
    input_info: InputInfo,
    size: int | None = None,
    holdout_dir: str | os.PathLike | None = None,
) -> tuple[CalibrationSet, CalibrationSet]:
    """(calibration, held-out): held-out images never calibrate.

    Without ``holdout_dir``, an evenly spaced fifth of ``folder`` is held out and ``size`` applies
    to the rest; with it, that folder is the held-out set and any of its images (same bytes) that
    also sit in ``folder`` are dropped from calibration.
    """
    files = list_images(folder)
    if holdout_dir is not None:
        held = list_images(holdout_dir)
        digests = {hashlib.sha256(f.read_bytes()).digest() for f in held}
        rest = [f for f in files if hashlib.sha256(f.read_bytes()).digest() not in digests]
        if not rest:
            raise InputError(
                f"every calibration image in {folder} is also in the held-out folder {holdout_dir};"
                " calibrate on different images"
            )
    else:
        n = min(HOLDOUT_MAX, max(HOLDOUT_MIN, round(len(files) * HOLDOUT_FRACTION)))
        if len(files) < 2 * n:
            raise InputError(
                f"{folder} holds {len(files)} images: too few to hold {n} out for measuring"
                " agreement and calibrate on the rest; add images (300+ recommended) or pass"
                " --holdout DIR"
            )
        held = evenly_spaced(files, n)
        taken = set(held)
        rest = [f for f in files if f not in taken]
    if len(held) < HOLDOUT_MIN:
        warnings.warn(
            f"measuring agreement on {len(held)} held-out images; with fewer than {HOLDOUT_MIN} one"
            " detection moves the matched fraction by several percent",
            stacklevel=2,
        )
    return CalibrationSet.from_files(rest, input_info, size, str(folder)), CalibrationSet(
        held, input_info
    )


class OrtCalibrationReader(CalibrationDataReader):
    """onnxruntime.quantization.CalibrationDataReader over a CalibrationSet."""

    def __init__(self, calib: CalibrationSet, progress=None) -> None:
        self._it = calib.batches(progress)

    def get_next(self):
        return next(self._it, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def split_unseen(held: CalibrationSet) -> tuple[CalibrationSet, CalibrationSet | None]:
    """(search, unseen): an evenly spaced third of the held-out images that the budget search never
    sees,
    so the agreement reported on it is not the figure the search optimised. None when fewer than
    HOLDOUT_MIN would be left to search on."""
    n = len(held.files) // 3
    if len(held.files) - n < HOLDOUT_MIN or n < HOLDOUT_MIN // 2:
        return held, None
    unseen = evenly_spaced(held.files[1:], n)  # offset by one: the search keeps the first image
    taken = set(unseen)
    return CalibrationSet([f for f in held.files if f not in taken], held.input), CalibrationSet(
        unseen, held.input
    )
