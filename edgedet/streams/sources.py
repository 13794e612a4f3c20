"""Sources: one syntax for images, folders, globs, video files, network streams and cameras.

``parse_sources`` turns what a user typed into :class:`SourceSpec` records (one per stream);
``open_reader`` opens one and fails with one :class:`InputError` line naming the source and
the fix (missing file, corrupt video, unknown codec, unreachable address, absent camera).
A reader yields ``(rgb, pts)`` pairs: RGB uint8 [H, W, 3] and the frame's presentation time in
seconds (``None`` where the source has none: images, cameras).

Decoders: PyAV (FFmpeg inside the wheel) for video files and network streams, OpenCV for V4L2
cameras and GStreamer pipeline strings (Jetson: ``nvarguscamerasrc ! ... ! appsink``; needs an
OpenCV built with GStreamer, which the pip wheel is not).
"""

from __future__ import annotations

import glob as globlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedet.errors import InputError, require
from edgedet.preprocess import IMAGE_SUFFIXES, read_image

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "tcp", "srt")
LIST_SUFFIXES = (".txt", ".streams")
KINDS = ("images", "video", "network", "camera", "gstreamer")


@dataclass(frozen=True)
class SourceSpec:
    """One stream. ``kind`` is one of KINDS; ``target`` the path, URL, camera index or pipeline;
    ``files`` the image files of an ``images`` source."""

    kind: str
    target: str
    files: tuple[Path, ...] = ()

    @property
    def live(self) -> bool:
        """Frames arrive in real time: drop stale ones (policy ``latest``) and reconnect."""
        return self.kind in ("network", "camera", "gstreamer")

    @property
    def name(self) -> str:
        return self.target


def parse_sources(sources: str | os.PathLike | int | list | tuple) -> list[SourceSpec]:
    """What the user typed -> one SourceSpec per stream.

    Image files, folders and image globs given together form one ``images`` stream; every video
    file, URL, camera and GStreamer pipeline is its own stream; a ``.txt``/``.streams`` file lists
    sources one per line (``#`` comments allowed).
    """
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise InputError("no source given; pass an image, folder, video file, URL or camera index")
    specs: list[SourceSpec] = []
    images: list[Path] = []
    for item in items:
        for spec in _parse_one(str(item)):
            if spec.kind == "images":
                images.extend(spec.files)
            else:
                specs.append(spec)
    if images:
        specs.insert(
            0,
            SourceSpec(
                "images", str(images[0].parent if len(images) > 1 else images[0]), tuple(images)
            ),
        )
    return specs


def _parse_one(text: str) -> list[SourceSpec]:
    text = text.strip()
    if " ! " in text:
        return [SourceSpec("gstreamer", text)]
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in NETWORK_SCHEMES:
        return [SourceSpec("network", text)]
    if scheme:
        raise InputError(
            f"source {text}: unknown scheme '{scheme}://' (known: {', '.join(NETWORK_SCHEMES)})"
        )
    if re.fullmatch(r"\d+", text) or re.fullmatch(r"/dev/video\d+", text):
        return [SourceSpec("camera", text)]
    if any(c in text for c in "*?["):
        matches = sorted(Path(p) for p in globlib.glob(text))
        if not matches:
            raise InputError(f"source {text}: the pattern matches no files")
        return [s for p in matches for s in _parse_path(p)]
    return _parse_path(Path(text))


def _parse_path(path: Path) -> list[SourceSpec]:
    if path.is_dir():
        from edgedet.preprocess import list_images

        return [SourceSpec("images", str(path), tuple(list_images(path)))]
    if not path.exists():
        raise InputError(
            f"source {path} does not exist (a file, folder, glob, URL or camera index)"
        )
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return [SourceSpec("images", str(path), (path,))]
    if suffix in LIST_SUFFIXES:
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            raise InputError(f"source list {path} names no sources (one per line)")
        return [s for ln in lines for s in _parse_one(ln)]
    return [SourceSpec("video", str(path))]


def is_stream_source(text: str) -> bool:
    """True unless ``text`` is an image file, a folder of images or a glob of images (the
    original `edgedet infer` path)."""
    try:
        return any(s.kind != "images" for s in _parse_one(str(text)))
    except InputError:
        return False


class Reader:
    """Frames of one source. ``open`` raises InputError for a bad source; ``frames`` yields
    ``(rgb, pts)`` until the end (a live source's end is a disconnect)."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    def open(self) -> None:
        pass

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def fps(self) -> float | None:
        return None


class ImageReader(Reader):
    def frames(self):
        for path in self.spec.files:
            yield read_image(path), None


class AVReader(Reader):
    """Video files and network streams through PyAV. Live streams open with FFmpeg's low-delay
    flags and RTSP over TCP (no lost UDP packets, so no smeared frames)."""

    def __init__(self, spec: SourceSpec, timeout: float = 5.0) -> None:
        super().__init__(spec)
        self.timeout = timeout
        self.container = None
        self.stream = None

    def open(self) -> None:
        av = require("av", "streams", "Reading video files and network streams")
        target = self.spec.target
        if self.spec.kind == "video" and not Path(target).is_file():
            raise InputError(f"video {target} does not exist")
        options = {}
        if self.spec.live:
            options = {"fflags": "nobuffer", "flags": "low_delay"}
            if target.lower().startswith("rtsp"):
                options["rtsp_transport"] = "tcp"
        try:
            self.container = av.open(target, options=options, timeout=(self.timeout, self.timeout))
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError(self._open_failure(exc)) from None
        if not self.container.streams.video:
            self.close()
            raise InputError(f"source {target} has no video stream")
        self.stream = self.container.streams.video[0]
        if self.stream.codec_context is None or self.stream.codec_context.codec is None:
            self.close()
            raise InputError(
                f"source {target}: its video codec is unknown to FFmpeg; re-encode it (e.g. to"
                " H.264)"
            )
        if not self.spec.live:
            self.stream.thread_type = "AUTO"  # frame threads: files are decoded ahead anyway

    def _open_failure(self, exc: Exception) -> str:
        target, why = self.spec.target, _first_line(exc)
        if self.spec.live:
            return (
                f"cannot open stream {target} ({why}); check the address, the port and that the"
                " sender is running"
            )
        return (
            f"video {target} cannot be read ({why}); the file is corrupt, truncated or not a video"
        )

    def frames(self):
        av = require("av", "streams", "Reading video files and network streams")
        try:
            for frame in self.container.decode(self.stream):
                yield (
                    frame.to_ndarray(format="rgb24"),
                    (float(frame.time) if frame.time is not None else None),
                )
        except av.error.EOFError:
            return
        except (av.error.FFmpegError, OSError) as exc:
            if self.spec.live:
                return  # a dropped connection: the caller reconnects
            if isinstance(exc, av.error.DecoderNotFoundError):
                raise InputError(
                    f"video {self.spec.target}: no decoder for its codec; re-encode it (e.g. to"
                    " H.264)"
                ) from None
            raise InputError(
                f"video {self.spec.target} is corrupt ({_first_line(exc)}); re-encode or remove it"
            ) from None

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    @property
    def fps(self):
        rate = self.stream.average_rate if self.stream is not None else None
        return float(rate) if rate else None


class OpenCVReader(Reader):
    """V4L2 cameras (``0``, ``/dev/video0``) and GStreamer pipelines through OpenCV."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.cap = None

    def open(self) -> None:
        import cv2

        target = self.spec.target
        if self.spec.kind == "camera":
            device = target if target.startswith("/dev/") else f"/dev/video{target}"
            if not os.path.exists(device):
                raise InputError(
                    f"camera {target}: {device} does not exist; list cameras with `ls /dev/video*`"
                )
            self.cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        else:
            if not re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()):
                raise InputError(
                    "GStreamer pipelines need an OpenCV built with GStreamer (JetPack's system "
                    "OpenCV is; the opencv-python wheel is not)"
                )
            self.cap = cv2.VideoCapture(target, cv2.CAP_GSTREAMER)
        if not self.cap.isOpened():
            self.close()
            raise InputError(f"camera {target} cannot be opened (busy, or not a capture device)")

    def frames(self):
        import cv2

        while self.cap is not None:
            ok, bgr = self.cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def open_reader(spec: SourceSpec, timeout: float = 5.0) -> Reader:
    """An opened reader for ``spec`` (InputError with one line if it cannot be read)."""
    reader = {"images": ImageReader, "camera": OpenCVReader, "gstreamer": OpenCVReader}.get(
        spec.kind
    )
    reader = reader(spec) if reader else AVReader(spec, timeout)
    reader.open()
    return reader


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
