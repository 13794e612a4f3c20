"""Moving-shape video sequences with known tracks, for testing stream inference and tracking.

numpy + OpenCV (+ PyAV to encode), no torch. Shapes are the nano classes drawn as in
:mod:`exporters.nano.synthetic` (same unit polygons, background textures and colour rule), but
each object keeps its class, size, colour and spin for the whole sequence and moves at constant
velocity inside its own horizontal lane, bouncing off the lane's edges. Lanes do not overlap, so
objects never occlude each other and every object is fully visible in every frame: the ground
truth box is the tight box of its pixels.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from exporters.nano import CLASS_NAMES
from exporters.nano.synthetic import (
    _MIN_CONTRAST,
    _RING_HOLE,
    _SHAPES,
    _background,
    _random_colours,
)


def render_sequence(
    seed: int, num_frames: int = 60, width: int = 480, height: int = 320, num_objects: int = 3
) -> tuple[list[np.ndarray], list[list[tuple[int, int, list[float]]]]]:
    """Frames (RGB uint8 [height, width, 3]) and per frame ``[(track_id, class_index, [x1, y1, x2,
    y2])]``
    (track ids 1..num_objects, boxes in pixel edges, x2/y2 exclusive)."""
    rng = np.random.default_rng([seed, 7])
    bg = np.clip(_background(rng, height, width) + 0.5, 0, 255)
    lane_h = height / num_objects
    objects = []
    for k in range(num_objects):
        size = rng.uniform(0.45, 0.7) * min(lane_h, width / 4)
        cls = int(rng.integers(len(CLASS_NAMES)))
        colours = _random_colours(rng, 8)
        far = np.flatnonzero(
            np.linalg.norm(colours - bg.reshape(-1, 3).mean(0), axis=1) >= _MIN_CONTRAST
        )
        objects.append(
            {
                "id": k + 1,
                "cls": cls,
                "size": size,
                "colour": colours[far[0] if far.size else 0],
                "theta": rng.uniform(0, 2 * np.pi),
                "spin": rng.uniform(-0.05, 0.05),
                "pos": np.array([rng.uniform(size, width - size), (k + 0.5) * lane_h]),
                "vel": np.array([rng.choice([-1, 1]) * rng.uniform(2, 6), rng.uniform(-1, 1)]),
                "lane": (k * lane_h, (k + 1) * lane_h),
            }
        )
    frames, truth = [], []
    for _ in range(num_frames):
        img = bg.copy()
        boxes = []
        for o in objects:
            mask = _shape_mask(o, height, width)
            img[mask] = o["colour"]
            ys, xs = np.nonzero(mask)
            boxes.append(
                (
                    o["id"],
                    o["cls"],
                    [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
                )
            )
            _move(o, width)
        frames.append(img.astype(np.uint8))
        truth.append(boxes)
    return frames, truth


def _shape_mask(o: dict, height: int, width: int) -> np.ndarray:
    rot = np.array(
        [
            [math.cos(o["theta"]), -math.sin(o["theta"])],
            [math.sin(o["theta"]), math.cos(o["theta"])],
        ]
    )
    name = CLASS_NAMES[o["cls"]]
    mask = np.zeros((height, width), np.uint8)
    outer = (_SHAPES[name] * o["size"] / 2) @ rot.T + o["pos"]
    cv2.fillPoly(mask, [np.round(outer * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    if name == "ring":
        hole = (_SHAPES[name] * _RING_HOLE * o["size"] / 2) @ rot.T + o["pos"]
        cv2.fillPoly(mask, [np.round(hole * 16).astype(np.int32)], 0, cv2.LINE_8, 4)
    return mask.view(bool)


def _move(o: dict, width: int) -> None:
    """Constant velocity, bouncing off the image sides and the lane's top and bottom."""
    r = o["size"] / 2 + 1
    lo, hi = np.array([r, o["lane"][0] + r]), np.array([width - r, o["lane"][1] - r])
    o["pos"] = o["pos"] + o["vel"]
    for axis in (0, 1):
        if not lo[axis] <= o["pos"][axis] <= hi[axis]:
            o["vel"][axis] = -o["vel"][axis]
            o["pos"][axis] = np.clip(o["pos"][axis], lo[axis], hi[axis])
    o["theta"] += o["spin"]


def write_video(
    frames: list[np.ndarray],
    path: str | Path,
    fps: int = 30,
    codec: str = "libx264",
    crf: int = 12,
    pix_fmt: str | None = None,
) -> Path:
    """Encode RGB frames with PyAV (H.264, yuv444p at ``crf``: near-lossless; crf 0 is lossless;
    ``pix_fmt="yuv420p"`` for what cameras send)."""
    import av

    path = Path(path)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps, 1))
        stream.width, stream.height = w, h
        stream.pix_fmt = pix_fmt or ("yuv444p" if codec == "libx264" else "yuv420p")
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
