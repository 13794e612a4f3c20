"""Reading images and letterboxing them to the model input, the runtime's only pre-processing.

Mean/std normalisation is folded into every edgedet graph, so the runtime only
decodes, letterboxes and lays out the pixels. Calibration and evaluation use
these same functions, so there is one pre-processing code path.

Decoding uses Pillow (it raises on truncated/corrupt files instead of returning
partial pixels, and applies EXIF orientation); the pixels of a plain JPEG come from
OpenCV's decoder instead (same libjpeg-turbo, bit-identical, faster: _decode_jpeg_cv2),
after Pillow has read and checked the header; resizing uses OpenCV, measured 13-36x
faster than Pillow's bilinear resize (benchmarks/resize.py, CPU time per call: 0.27 ms vs 3.4 ms for
640x480 -> 320, 0.39 ms vs 14.1 ms for 1920x1080 -> 320 on the 2-core dev machine).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from edgedet.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Larger than any camera frame a detector sees; guards against decompression bombs.
MAX_PIXELS = 20_000 * 20_000


@dataclass(frozen=True)
class LetterboxInfo:
    """How an original image maps into the letterboxed input.

    input = original * scale + (pad_x, pad_y); the inverse maps boxes back.
    """

    scale: float
    pad_x: float
    pad_y: float
    orig_h: int
    orig_w: int
    scale_y: float | None = (
        None  # stretch resize: the vertical scale (``scale`` is then the horizontal one)
    )


def read_image(path: str | os.PathLike | BinaryIO) -> np.ndarray:
    """Decode an image file to an RGB uint8 array [H, W, 3].

    Grayscale, palette, RGBA (alpha dropped), 16-bit and EXIF-rotated images are converted.
    Raises InputError naming the file for anything unreadable.
    """
    return _decode(path)[0]


def read_image_for_input(
    path: str | os.PathLike, height: int, width: int, resize: str = "letterbox"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode for a (height, width) network input: (RGB uint8 [h, w, 3], (orig_h, orig_w)).

    A JPEG at least twice the size the ``resize`` step brings it to (``"letterbox"``: the image
    inside the padding, aspect kept; ``"stretch"``: the whole input) decodes at 1/2, 1/4 or 1/8
    scale straight from its DCT coefficients (Pillow ``Image.draft``'s choice: the smallest scale
    still at least that size on both sides), so the resize that follows only shrinks, or has nothing
    left to do: a 640x480 photo for a 320 input decodes at 320x240, its letterboxed size, and a
    4000x3000 photo for a 320 input at 500x375, in ~1/6 of the time (benchmarks/e2e.py; the
    accuracy effect: benchmarks/decode_map.py). (orig_h, orig_w) is the size a full decode gives
    (after EXIF rotation): pass it to :func:`letterbox` as ``source_size`` so boxes map back to it.
    """

    def target(full_h: int, full_w: int) -> tuple[int, int]:
        if resize == "stretch":
            return height, width
        return letterboxed_size(full_h, full_w, height, width)[1:]

    return _decode(path, target)


def _decode(path, target=None) -> tuple[np.ndarray, tuple[int, int]]:
    """(RGB uint8, (orig_h, orig_w)); ``target(orig_h, orig_w) -> (h, w)``: the size the pixels
    are needed at, for a JPEG to decode at a reduced DCT scale no smaller than that."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    # a file object: bytes in memory (edgedet serve)
    path = path if hasattr(path, "read") else Path(path)
    try:
        data = path.read() if hasattr(path, "read") else path.read_bytes()
        # header only: size, format, EXIF; pixels decode below
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(
                    f"image {path} is {im.width}x{im.height}, larger than edgedet accepts;"
                    " downscale it first"
                )
            if im.width == 0 or im.height == 0:
                raise InputError(f"image {path} has zero size")
            full = (im.height, im.width)
            orientation = im.getexif().get(0x0112, 1)
            plain_jpeg = im.format == "JPEG" and im.mode == "RGB" and orientation not in range(2, 9)
            if target and im.format == "JPEG":
                swap = orientation in (5, 6, 7, 8)  # stored sideways: EXIF turns it on display
                need_h, need_w = target(*(full[::-1] if swap else full))
                need_h, need_w = (need_w, need_h) if swap else (need_h, need_w)
                if full[0] >= 2 * need_h and full[1] >= 2 * need_w:
                    # largest DCT scale keeping both stored sides >= the needed size
                    im.draft("RGB", (need_w, need_h))
            if plain_jpeg:
                scale = next(  # the DCT scale draft chose: sides are rounded up
                    (k for k in (1, 2, 4, 8) if -(-full[1] // k) == im.width), 0
                )
                rgb = _decode_jpeg_cv2(data, scale, (im.height, im.width))
                if rgb is not None:
                    return rgb, full
            if orientation in (5, 6, 7, 8):  # EXIF orientations that swap width and height
                full = full[::-1]
            # exif_transpose copies the whole image even when there is nothing to do
            if orientation in range(2, 9):
                im = ImageOps.exif_transpose(im)
            return _to_rgb8(im, path), full
    except FileNotFoundError:
        raise InputError(f"image {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(
            f"{path} is a folder; pass image files or use a folder argument where accepted"
        ) from None
    except PermissionError:
        raise InputError(
            f"image {path} cannot be read (permission denied); fix its permissions"
        ) from None
    except UnidentifiedImageError:
        raise InputError(
            f"{path} is not an image Pillow can decode (empty, corrupt or another file type)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"image {path} is corrupt or truncated ({exc}); re-save or remove it"
        ) from None
    except Image.DecompressionBombError:
        raise InputError(
            f"image {path} is too large to decode safely; downscale it first"
        ) from None


# cv2.imdecode flags for a JPEG decoded at 1/scale; IMREAD_COLOR_RGB (OpenCV >= 4.11) saves a
# BGR->RGB pass
_CV2_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
# the scale bits; the colour bit is added below
_CV2_SCALE = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
_JPEG_END = b"\xff\xd9"


def _decode_jpeg_cv2(data: bytes, scale: int, size: tuple[int, int]) -> np.ndarray | None:
    """Pixels of a YCbCr JPEG without EXIF rotation by OpenCV (RGB uint8 [h, w, 3]), or None to let
    Pillow decode it. Both wrap libjpeg-turbo with the same settings (bit-identical pixels, full and
    DCT-scaled: tests/edgedet/test_fast_preprocess.py), but OpenCV writes 3-byte pixels straight
    into the array where Pillow unpacks into its 4-byte layout and copies out again: a 640x480 photo
    decodes in ~0.65x the time (docs/performance.md). OpenCV's libjpeg only warns about a truncated
    file and fills the rest grey, so a file not ending in the JPEG end marker is left to Pillow,
    which refuses it.
    """
    if scale not in _CV2_SCALE or not data.rstrip(b"\0").endswith(_JPEG_END):
        return None
    flags = _CV2_SCALE[scale] | cv2.IMREAD_IGNORE_ORIENTATION
    buf = np.frombuffer(data, np.uint8)
    if _CV2_RGB is not None:
        rgb = cv2.imdecode(buf, flags | _CV2_RGB)
    else:
        rgb = cv2.imdecode(buf, flags | cv2.IMREAD_COLOR)
        if rgb is not None:
            cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB, dst=rgb)
    if rgb is None or rgb.shape != (*size, 3):
        return None
    return rgb


def _to_rgb8(im, path) -> np.ndarray:
    """Pillow image of any mode -> RGB uint8; 16-bit and float modes are rescaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.asarray(im)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"image {path} decoded to shape {arr.shape}, expected H x W x 3")
    return np.ascontiguousarray(arr)


def as_rgb8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an in-memory image: HxWx3 (or HxW) uint8 RGB; float 0..1 and uint16 are
    converted."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} has shape {arr.shape}; expected H x W x 3 RGB")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = _array_to_uint8(arr, name)
    return np.ascontiguousarray(arr)


def _array_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """One rule per dtype, never guessed from the pixel values: floats are 0..1, uint16 is rescaled
    from 0..65535 (as 16-bit files are), other integers must already be 0..255."""
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise InputError(
            f"{name} has dtype {arr.dtype}; expected uint8 RGB (or float 0..1, uint16)"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} contains NaN or Inf pixel values")
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
            raise InputError(
                f"{name} is a float image with values outside 0..1 (max {float(arr.max()):.4g}); "
                "float images must be 0..1: divide by 255, or pass uint8"
            )
        return (arr.astype(np.float64) * 255.0 + 0.5).astype(np.uint8)
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
        raise InputError(
            f"{name} is a {arr.dtype} image with values outside 0..255; pass uint8 RGB (or uint16)"
        )
    return arr.astype(np.uint8)


def letterboxed_size(orig_h: int, orig_w: int, height: int, width: int) -> tuple[float, int, int]:
    """(scale, new_h, new_w): an (orig_h, orig_w) image fitted inside (height, width), aspect
    kept."""
    scale = min(height / orig_h, width / orig_w)
    return scale, max(1, round(orig_h * scale)), max(1, round(orig_w * scale))


def letterbox_info(orig_h: int, orig_w: int, height: int, width: int) -> LetterboxInfo:
    """Scale to fit inside (height, width) keeping aspect; pad evenly on both sides."""
    scale, new_h, new_w = letterboxed_size(orig_h, orig_w, height, width)
    return LetterboxInfo(scale, (width - new_w) / 2, (height - new_h) / 2, orig_h, orig_w)


def letterbox(
    image: np.ndarray,
    height: int,
    width: int,
    pad_value: int = 114,
    source_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize ``image`` [H, W, 3] uint8 into a (height, width) canvas, keeping aspect ratio.

    Returns the canvas [height, width, 3] uint8 and the :class:`LetterboxInfo` to map
    boxes back. Bilinear resize (cv2.INTER_LINEAR); integer padding split left/right.
    ``source_size`` (orig_h, orig_w): ``image`` is a reduced decode of an image of that size
    (:func:`read_image_for_input`); scale, padding and box mapping refer to the full size.
    """
    h, w = source_size or image.shape[:2]
    scale, new_h, new_w = letterboxed_size(h, w, height, width)
    same = (new_h, new_w) == image.shape[:2]
    resized = image if same else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = int((height - new_h) / 2), int((width - new_w) / 2)  # letterbox_info's pads
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    # store the integer offsets actually used so the inverse is exact
    return canvas, LetterboxInfo(scale, float(left), float(top), h, w)


def to_input(canvases: list[np.ndarray], dtype: str = "float32") -> np.ndarray:
    """Stack letterboxed HWC uint8 canvases into the contract input [B, 3, H, W]."""
    if dtype == "uint8":
        return np.ascontiguousarray(np.stack(canvases).transpose(0, 3, 1, 2))
    if not canvases:
        raise ValueError("to_input needs at least one canvas")
    if len({c.shape for c in canvases}) != 1:
        raise ValueError(f"canvases differ in shape: {sorted({c.shape for c in canvases})}")
    h, w, channels = canvases[0].shape
    out = np.empty((len(canvases), channels, h, w), dtype=np.float32)
    for b, canvas in enumerate(canvases):
        # cv2.split de-interleaves with SIMD; assigning a contiguous uint8 plane converts it in one
        # pass. ~0.7x the time of a multiply reading the HWC canvas through a transposed view (same
        # bits)
        planes = (
            cv2.split(canvas)
            if canvas.flags.c_contiguous
            else [canvas[..., c] for c in range(channels)]
        )
        for c, plane in enumerate(planes):
            out[b, c] = plane
    out *= np.float32(1.0 / 255.0)  # float32(pixel) * float32(1/255), as before
    return out


def unletterbox_boxes(boxes: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Map boxes [N, 4] (x1, y1, x2, y2) from input pixels back to original pixels, clipped."""
    out = np.empty_like(boxes, dtype=np.float32)
    scale_y = info.scale if info.scale_y is None else info.scale_y
    out[:, 0::2] = np.clip((boxes[:, 0::2] - info.pad_x) / info.scale, 0, info.orig_w)
    out[:, 1::2] = np.clip((boxes[:, 1::2] - info.pad_y) / scale_y, 0, info.orig_h)
    return out


RESIZE_MODES = ("letterbox", "stretch")
PADDINGS = ("center", "top-left")
CHANNEL_ORDERS = ("RGB", "BGR")


def stretch(
    image: np.ndarray, height: int, width: int, source_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize ``image`` [H, W, 3] to exactly (height, width), not keeping aspect (SSD-style models
    were trained this way; letterboxing them shifts every box). Bilinear, like :func:`letterbox`;
    ``source_size`` as there."""
    h, w = source_size or image.shape[:2]
    canvas = (
        image
        if image.shape[:2] == (height, width)
        else cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    )
    return canvas, LetterboxInfo(width / w, 0.0, 0.0, h, w, scale_y=height / h)


def letterbox_top_left(
    image: np.ndarray,
    height: int,
    width: int,
    pad_value: int = 114,
    source_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, LetterboxInfo]:
    """YOLOX's letterbox: the image in the top-left corner, all padding right/bottom, and the
    resized size truncated as YOLOX's ``preproc`` does (``int(w * r)``; :func:`letterbox` rounds).
    ``source_size`` as in :func:`letterbox`."""
    h, w = source_size or image.shape[:2]
    info = letterbox_info(h, w, height, width)
    new_w, new_h = max(1, int(w * info.scale)), max(1, int(h * info.scale))
    resized = (
        image
        if (new_h, new_w) == image.shape[:2]
        else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, LetterboxInfo(info.scale, 0.0, 0.0, h, w)


def fit_to_input(
    image: np.ndarray,
    height: int,
    width: int,
    pad_value: int = 114,
    resize: str = "letterbox",
    padding: str = "center",
    channel_order: str = "RGB",
    source_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, LetterboxInfo]:
    """Bring an RGB image to the model input as its manifest says (``InputInfo.resize``,
    ``padding``, ``channel_order``); the defaults are exactly :func:`letterbox`. ``source_size``:
    ``image`` is a reduced decode (:func:`read_image_for_input`) of an image of that (h, w)."""
    if resize == "letterbox" and padding == "center":
        canvas, info = letterbox(image, height, width, pad_value, source_size)
    elif resize == "letterbox" and padding == "top-left":
        canvas, info = letterbox_top_left(image, height, width, pad_value, source_size)
    elif resize == "stretch":
        canvas, info = stretch(image, height, width, source_size)
    else:
        raise InputError(
            f"the manifest asks for resize '{resize}' with padding '{padding}'; edgedet knows"
            f" resize {'/'.join(RESIZE_MODES)} and padding {'/'.join(PADDINGS)}: re-create the"
            " manifest"
        )
    if channel_order == "BGR":
        canvas = canvas[..., ::-1]
    elif channel_order != "RGB":
        raise InputError(
            f"the manifest asks for channel order '{channel_order}'; edgedet knows RGB and BGR"
        )
    return canvas, info


def list_images(folder: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """Image files in ``folder`` (sorted, non-recursive); InputError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise InputError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files[:limit] if limit else files
