"""Decoders for raw anchor-free grid heads, built as ONNX nodes in front of NMS (``--decode``).

A raw grid head predicts, for every cell of every feature map (strides 8, 16, 32 by default,
cells in row-major order, level after level as YOLOX and YOLOv6/v8 flatten them):

  yolox   (dx, dy, log w, log h): centre = (cell + d) * stride, size = exp(log size) * stride
          (YOLOX ``YOLOXHead.decode_outputs``; exported raw when ``decode_in_inference`` is off)
  ltrb    (l, t, r, b) distances in stride units from the cell centre (cell + 0.5) * stride
          (YOLOv6 / YOLOv8 anchor points after the DFL integral)

and for SSD-style heads whose box output holds deltas against prior boxes (``--anchors``):

  ssd     centre = prior centre + d_xy * variance_xy * prior size, size = prior size *
          exp(d_wh * variance_wh); priors (cx, cy, w, h) in the units the boxes come out in
          (normalised for most SSD exports: add ``--normalized``)

Anything else is refused: a file whose boxes we cannot decode must not run as garbage.
"""

from __future__ import annotations

import math

import numpy as np

from edgedet.errors import InputError

DECODERS = ("none", "yolox", "ltrb", "ssd")


def grid_cells(height: int, width: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Cell offsets [N, 2] (x, y) and strides [N, 1], float32, in the heads' flattening order."""
    cells, sizes = [], []
    for s in strides:
        gh, gw = math.ceil(height / s), math.ceil(width / s)
        yv, xv = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells.append(np.stack([xv, yv], -1).reshape(-1, 2))
        sizes.append(np.full((gh * gw, 1), s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(sizes).astype(np.float32)


def load_anchors(path, n: int) -> np.ndarray:
    """Prior boxes [N, 4] (cx, cy, w, h) from a .npy or text file (one prior per line)."""
    from pathlib import Path

    path = Path(path)
    try:
        a = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=None, ndmin=2)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read the prior boxes {path} ({exc}); give a .npy or text file of N rows "
            "cx cy w h"
        ) from None
    a = np.asarray(a, np.float32).reshape(-1, 4) if np.size(a) % 4 == 0 else np.asarray(a)
    if a.shape != (n, 4):
        raise InputError(
            f"prior boxes {path} have shape {np.shape(a)}; the head has {n} candidates: expected"
            f" [{n}, 4]"
        )
    return a


def decode_ssd(b, boxes: str, spec, n: int) -> tuple[str, str]:
    """SSD deltas [B, N, 4] against the priors of ``spec.anchors`` -> (cx, cy, w, h)."""
    if not spec.anchors:
        raise InputError(
            "--decode ssd needs the prior boxes: --anchors priors.npy (N rows cx cy w h)"
        )
    priors = load_anchors(spec.anchors, n)
    centre, size = (
        b.const(priors[None, :, :2], np.float32),
        b.const(priors[None, :, 2:], np.float32),
    )
    var_xy, var_wh = (b.const(np.float32(v), np.float32) for v in spec.variances)
    d_xy, d_wh = b.slice_last(boxes, 0, 2), b.slice_last(boxes, 2, 4)
    xy = b.op("Add", [centre, b.op("Mul", [b.op("Mul", [d_xy, var_xy]), size])])
    wh = b.op("Mul", [size, b.op("Exp", [b.op("Mul", [d_wh, var_wh])])])
    return b.op("Concat", [xy, wh], axis=-1), "cxcywh"


def decode_grid(b, boxes: str, spec, n: int, height: int, width: int) -> tuple[str, str]:
    """Decode raw box values [B, N, 4] of a grid head; returns (boxes, their format)."""
    if spec.decode not in DECODERS[1:3]:
        raise InputError(f"--decode {spec.decode} is not one of {', '.join(DECODERS)}")
    cells, strides = grid_cells(height, width, tuple(spec.strides))
    if len(cells) != n:
        raise InputError(
            f"the head has {n} candidates but strides {list(spec.strides)} give {len(cells)} grid"
            f" cells at {height}x{width}; pass the model's --strides (e.g. 8,16,32 or 8,16,32,64)"
        )
    grid, stride = b.const(cells[None], np.float32), b.const(strides[None], np.float32)
    first, second = b.slice_last(boxes, 0, 2), b.slice_last(boxes, 2, 4)
    if spec.decode == "yolox":
        xy = b.op("Mul", [b.op("Add", [first, grid]), stride])
        wh = b.op("Mul", [b.op("Exp", [second]), stride])
        return b.op("Concat", [xy, wh], axis=-1), "cxcywh"
    centre = b.op("Mul", [b.op("Add", [grid, b.const(0.5, np.float32)]), stride])
    top_left = b.op("Sub", [centre, b.op("Mul", [first, stride])])
    bottom_right = b.op("Add", [centre, b.op("Mul", [second, stride])])
    return b.op("Concat", [top_left, bottom_right], axis=-1), "xyxy"
