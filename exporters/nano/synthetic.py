"""Synthetic detection dataset for the nano detector: coloured shapes on textured backgrounds.

numpy + OpenCV only (no torch), so the runtime demo can generate the validation set.

Each image (240..640 px per side, any aspect ratio) has a textured background (flat, gradient,
stripes, checker or blotches, optionally blended with a second texture, plus pixel noise),
clutter that is not a class (soft irregular blobs and thick strokes under the objects, thin
lines and scribbles over them), and 1..10 objects of the classes in :data:`CLASS_NAMES`.

Objects: nominal size log-uniform in [max(12, 5% of the long side), min(250, 80% of the short
side)] px, so every object is at least ~16 px after letterboxing to 320; aspect jitter 0.75..1.33,
any rotation, a colour that differs from the background under it, solid/shaded/textured fill.
Objects are placed one after another, each on top of the earlier ones, fully inside the image.

Occlusion rule: a placement is rejected (and retried elsewhere, up to 20 times, else the object
is skipped) if it would leave any earlier object with less than ``MIN_VISIBLE`` (70 %) of its
pixels visible. So every annotated object is at least 70 % visible; its box is the tight box of
its visible pixels and its ``area`` the visible pixel count. Thin clutter drawn over objects
(1-2 px lines) does not count as occlusion.

Every image draws from its own generator ``np.random.default_rng([seed, index])``, so a split
is identical for a seed however it is generated (in order, in chunks, in parallel).
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from exporters.nano import CLASS_NAMES

# Bump when the rendering changes, so cached splits (data/synthetic/...) are regenerated.
GENERATOR_VERSION = 3
TRAIN_SEED = 1
VAL_SEED = 2
VAL_SIZE = 500
MIN_SIDE, MAX_SIDE = 240, 640
MAX_OBJECTS = 10
MIN_VISIBLE = 0.7
JPEG_QUALITY = 90
_PLACE_TRIES = 20
_MIN_CONTRAST = 80.0  # RGB Euclidean distance between object colour and the background under it


def _polygon(n: int, radii) -> np.ndarray:
    """Closed polygon [n, 2] with vertex i at angle 2*pi*i/n - pi/2 and radius radii[i % len]."""
    a = np.arange(n) * (2 * np.pi / n) - np.pi / 2
    r = np.resize(np.asarray(radii, dtype=np.float64), n)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


_W = 0.32  # cross arm half-width
# Unit shapes (radius ~1, centred at 0); a ring is an outer circle minus ``_RING_HOLE`` times it.
_SHAPES = {
    "circle": _polygon(48, [1.0]),
    "square": np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * 0.8,
    "triangle": _polygon(3, [1.0]),
    "star": _polygon(10, [1.0, 0.42]),
    "ring": _polygon(48, [1.0]),
    "cross": np.array(
        [
            [-_W, -1],
            [_W, -1],
            [_W, -_W],
            [1, -_W],
            [1, _W],
            [_W, _W],
            [_W, 1],
            [-_W, 1],
            [-_W, _W],
            [-1, _W],
            [-1, -_W],
            [-_W, -_W],
        ],
        dtype=np.float64,
    ),
}
_RING_HOLE = 0.55


# ---------------------------------------------------------------- backgrounds


def _random_colours(rng, n: int) -> np.ndarray:
    """RGB float32 [n, 3] from HSV with saturation 0.2..1 and value 0.15..1 (greys and darks
    too)."""
    hsv = np.stack([rng.integers(0, 180, n), rng.integers(50, 256, n), rng.integers(40, 256, n)], 1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _random_colour(rng) -> np.ndarray:
    return _random_colours(rng, 1)[0]


def _texture(rng, h: int, w: int) -> np.ndarray:
    """One background layer [h, w, 3] float32: flat, gradient, stripes, checker or blotches."""
    kind = rng.choice(["flat", "gradient", "stripes", "checker", "blotches"])
    c1, c2 = _random_colour(rng), _random_colour(rng)
    if kind == "flat":
        return np.broadcast_to(c1, (h, w, 3)).astype(np.float32)
    if kind == "blotches":
        gh, gw = rng.integers(2, 9, 2)
        coarse = rng.uniform(0, 255, (gh, gw, 3)).astype(np.float32)
        return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255)
    yy, xx = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    theta = rng.uniform(0, np.pi)
    u = xx * np.float32(math.cos(theta)) + yy * np.float32(math.sin(theta))
    if kind == "gradient":
        t = (u - u.min()) / max(float(u.max() - u.min()), 1.0)
    elif kind == "stripes":
        period = rng.uniform(6, 60)
        t = 0.5 + 0.5 * np.sin(u * np.float32(2 * np.pi / period))
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)
    else:
        cell = rng.uniform(8, 48)
        v = yy * np.float32(math.cos(theta)) - xx * np.float32(math.sin(theta))
        t = ((np.floor(u * np.float32(1 / cell)) + np.floor(v * np.float32(1 / cell))) % 2).astype(
            np.float32
        )
    return cv2.merge([c1[i] + (c2[i] - c1[i]) * t for i in range(3)])


def _background(rng, h: int, w: int) -> np.ndarray:
    """Background [h, w, 3] float32 0..255: a texture, maybe blended with another, plus noise."""
    bg = _texture(rng, h, w)
    if rng.random() < 0.5:
        alpha = rng.uniform(0.2, 0.5)
        bg = cv2.addWeighted(bg, 1 - alpha, _texture(rng, h, w), alpha, 0)
    sigma = rng.uniform(0, 14)
    if sigma > 2:  # grey noise, the same on all channels (sensor-like luminance noise)
        noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(sigma)
        bg = bg + cv2.merge([noise, noise, noise])
    return np.ascontiguousarray(bg, dtype=np.float32)


# ---------------------------------------------------------------- clutter


def _blob(rng, img: np.ndarray) -> None:
    """Semi-transparent irregular blob (radial Fourier noise of order 2 and 3): a smooth potato,
    neither a circle nor pointed like a star or cross."""
    h, w = img.shape[:2]
    a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    r = np.ones_like(a)
    for k in (2, 3):
        r += rng.uniform(0.15, 0.3) * np.cos(k * a + rng.uniform(0, 2 * np.pi))
    size = rng.uniform(15, 0.4 * min(h, w))
    pts = np.stack([r * np.cos(a), r * np.sin(a)], 1) * size / 2 + rng.uniform((0, 0), (w, h))
    layer = img.copy()
    cv2.fillPoly(
        layer, [np.round(pts * 16).astype(np.int32)], _random_colour(rng).tolist(), cv2.LINE_AA, 4
    )
    alpha = rng.uniform(0.3, 0.7)
    cv2.addWeighted(layer, alpha, img, 1 - alpha, 0, dst=img)


def _stroke(rng, img: np.ndarray, thickness: tuple[int, int]) -> None:
    """A straight line or a random-walk scribble."""
    h, w = img.shape[:2]
    n = 2 if rng.random() < 0.5 else int(rng.integers(4, 12))
    start = rng.uniform((0, 0), (w, h))
    steps = (
        rng.normal(0, 0.15 * min(h, w), (n - 1, 2))
        if n > 2
        else rng.uniform((0, 0), (w, h))[None] - start
    )
    pts = np.vstack([start, start + np.cumsum(steps, 0)])
    t = int(rng.integers(thickness[0], thickness[1] + 1))
    cv2.polylines(
        img, [np.round(pts).astype(np.int32)], False, _random_colour(rng).tolist(), t, cv2.LINE_AA
    )


# ---------------------------------------------------------------- objects


def _object_polygons(rng, cls: str, size: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Outer polygon [K, 2] (and hole polygon for a ring) around the origin, in pixels."""
    aspect = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    scale = np.array([math.sqrt(aspect), 1 / math.sqrt(aspect)]) * size / 2
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    outer = (_SHAPES[cls] * scale) @ rot.T
    hole = (_SHAPES[cls] * _RING_HOLE * scale) @ rot.T if cls == "ring" else None
    return outer, hole


def _render_mask(outer: np.ndarray, hole: np.ndarray | None, centre) -> tuple[tuple, np.ndarray]:
    """The shape placed at ``centre``: its box (x0, y0, x1, y1) and bool mask [y1-y0, x1-x0] there.

    Vertices keep 1/16 px precision (cv2 ``shift=4``).
    """
    pts = outer + centre
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((pts - (x0, y0)) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    if hole is not None:
        cv2.fillPoly(
            mask, [np.round((hole + centre - (x0, y0)) * 16).astype(np.int32)], 0, cv2.LINE_8, 4
        )
    return (int(x0), int(y0), int(x1), int(y1)), mask.view(bool)


def _fill(rng, img: np.ndarray, box, m: np.ndarray) -> None:
    """Paint the object (bool mask ``m`` at ``box``): a colour far from the background under it;
    solid, shaded or speckled."""
    x0, y0, x1, y1 = box
    patch = img[y0:y1, x0:x1]
    under = patch[m].mean(0)
    candidates = _random_colours(rng, 8)
    contrast = np.linalg.norm(candidates - under, axis=1)
    ok = np.flatnonzero(contrast >= _MIN_CONTRAST)
    # the first colour that stands out; if none does, the inverse of the background
    colour = candidates[ok[0]] if ok.size else np.clip(255.0 - under, 0, 255).astype(np.float32)
    style = rng.random()
    fill = np.broadcast_to(colour, patch.shape)
    if style < 0.25:  # linear shading across the object
        ph, pw = m.shape
        t = (
            np.arange(pw)[None, :] / max(pw, 1) * rng.uniform(-0.4, 0.4)
            + np.arange(ph)[:, None] / max(ph, 1) * rng.uniform(-0.4, 0.4)
        ).astype(np.float32)
        fill = np.clip(fill * (1 + t[..., None]), 0, 255)
    elif style < 0.4:  # speckled texture
        fill = np.clip(fill + rng.normal(0, 18, patch.shape).astype(np.float32), 0, 255)
    patch[m] = fill[m]


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1) of a bool mask, x1/y1 exclusive (pixel edges)."""
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class _Layout:
    """Placed objects: full-image visible masks [H, W] bool, visible and full pixel counts."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.visible: list[np.ndarray] = []
        self.count: list[int] = []
        self.full: list[int] = []

    def hides_too_much(self, box, m: np.ndarray) -> bool:
        x0, y0, x1, y1 = box
        return any(
            c - np.count_nonzero(v[y0:y1, x0:x1] & m) < MIN_VISIBLE * f
            for v, c, f in zip(self.visible, self.count, self.full)
        )

    def add(self, box, m: np.ndarray) -> None:
        x0, y0, x1, y1 = box
        for i, v in enumerate(self.visible):
            v[y0:y1, x0:x1] &= ~m
            self.count[i] = int(np.count_nonzero(v))
        full = np.zeros((self.h, self.w), bool)
        full[y0:y1, x0:x1] = m
        self.visible.append(full)
        self.count.append(int(m.sum()))
        self.full.append(int(m.sum()))


def _place(rng, layout: _Layout, outer, hole):
    """A (box, mask) inside the image that leaves every earlier object >= MIN_VISIBLE visible, or
    None."""
    lo, hi = -outer.min(0) + 1, np.array([layout.w, layout.h]) - outer.max(0) - 2
    if np.any(hi <= lo):
        return None
    for _ in range(_PLACE_TRIES):
        box, m = _render_mask(outer, hole, rng.uniform(lo, hi))
        if np.count_nonzero(m) < 20:
            return None
        if not layout.hides_too_much(box, m):
            return box, m
    return None


def render_image(seed: int, index: int) -> tuple[np.ndarray, list[dict]]:
    """Image ``index`` of split ``seed``: RGB uint8 [H, W, 3] and objects
    ``[{"category_id", "bbox": [x, y, w, h], "area"}]`` (visible extent, original pixels)."""
    rng = np.random.default_rng([seed, index])
    w, h = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, 2))
    img = _background(rng, h, w)
    for _ in range(rng.integers(0, 5)):
        _blob(rng, img) if rng.random() < 0.6 else _stroke(rng, img, (3, 8))
    # >= 16 px after letterboxing to 320 (5 % of the long side): at 12-16 px a first model reached
    # AP50 0.15, shapes that small are barely distinguishable at the detector's stride 8
    smin, smax = max(12.0, 0.05 * max(h, w)), min(250.0, 0.8 * min(h, w))
    layout, classes = _Layout(h, w), []
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        cls = int(rng.integers(len(CLASS_NAMES)))
        size = math.exp(rng.uniform(math.log(smin), math.log(smax)))
        placed = _place(rng, layout, *_object_polygons(rng, CLASS_NAMES[cls], size))
        if placed is None:
            continue
        _fill(rng, img, *placed)
        layout.add(*placed)
        classes.append(cls)
    for _ in range(rng.integers(0, 4)):
        _stroke(rng, img, (1, 2))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    objects = []
    for cls, v, count in zip(classes, layout.visible, layout.count):
        x0, y0, x1, y1 = _box_of(v)
        objects.append({"category_id": cls + 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": count})
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), objects


def _write_chunk(out_dir: str, seed: int, indices: list[int]) -> list[tuple[dict, list[dict]]]:
    """Render and write images; returns (image record, objects) per index."""
    records = []
    for index in indices:
        rgb, objects = render_image(seed, index)
        name = f"{index + 1:06d}.jpg"
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        (Path(out_dir) / "images" / name).write_bytes(buf.tobytes())
        records.append(
            (
                {"id": index + 1, "file_name": name, "width": rgb.shape[1], "height": rgb.shape[0]},
                objects,
            )
        )
    return records


def generate_dataset(out_dir: str | Path, num_images: int, seed: int, workers: int = 1) -> Path:
    """Write ``out_dir/images/NNNNNN.jpg`` and ``out_dir/annotations.json`` (COCO instances).

    Image ids are 1..num_images, category ids 1..len(CLASS_NAMES) (class index + 1).
    Returns the path of annotations.json. ``workers`` > 1 renders in processes; the output is
    byte-identical for any ``workers``.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    chunks = [list(range(i, min(i + 50, num_images))) for i in range(0, num_images, 50)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(
                pool.map(_write_chunk, [str(out)] * len(chunks), [seed] * len(chunks), chunks)
            )
    else:
        results = [_write_chunk(str(out), seed, c) for c in chunks]
    images, annotations = [], []
    for image, objects in (r for chunk in results for r in chunk):
        images.append(image)
        for obj in objects:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image["id"], "iscrowd": 0, **obj}
            )
    categories = [
        {"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)
    ]
    path = out / "annotations.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    tmp.replace(path)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Generate the nano synthetic detection dataset (COCO format)."
    )
    parser.add_argument("--out", required=True, help="output folder (images/ and annotations.json)")
    parser.add_argument("--num", type=int, default=VAL_SIZE, help="number of images")
    parser.add_argument(
        "--seed",
        type=int,
        default=VAL_SEED,
        help=f"split seed (train {TRAIN_SEED}, val {VAL_SEED})",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes (output does not depend on it)"
    )
    args = parser.parse_args(argv)
    path = generate_dataset(args.out, args.num, args.seed, args.workers)
    print(f"wrote {args.num} images and {path}")


if __name__ == "__main__":
    main()
