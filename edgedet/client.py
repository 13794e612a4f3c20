"""A small client for `edgedet serve` (and any Triton model with its inputs/outputs), on
tritonclient.

    from edgedet.client import DetectorClient
    with DetectorClient("127.0.0.1:8001", class_names=names) as client:
        dets = client.detect(["a.jpg", "b.png"])   # list[Detections], original-image pixels

gRPC by default (``protocol="http"`` for port 8000). Each image is one request, sent as its file's
bytes; the server decodes it, so a corrupt file comes back as a Triton error naming the request.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgedet.detections import Detections
from edgedet.errors import InputError, require
from edgedet.serve import INPUT, OUTPUTS


def image_bytes(image: str | os.PathLike | bytes) -> bytes:
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    path = Path(image)
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    return path.read_bytes()


def unpack(result: dict[str, np.ndarray], class_names=(), source: str = "") -> Detections:
    """One response's arrays (batch dimension 1) -> Detections."""
    n = int(result["num_dets"][0, 0])
    h, w = (int(v) for v in result["image_size"][0])
    return Detections(
        result["det_boxes"][0, :n],
        result["det_scores"][0, :n],
        result["det_classes"][0, :n],
        tuple(class_names),
        (h, w),
        source=source,
    )


class DetectorClient:
    """Send images to an `edgedet serve` model over gRPC or HTTP; get Detections back."""

    def __init__(
        self,
        url: str = "127.0.0.1:8001",
        model: str = "edgedet",
        protocol: str = "grpc",
        class_names=(),
        timeout_s: float | None = 60.0,
    ) -> None:
        if protocol not in ("grpc", "http"):
            raise InputError(f"protocol {protocol!r} is not grpc or http")
        self.module = require(f"tritonclient.{protocol}", "serve", "edgedet.client")
        self.client = self.module.InferenceServerClient(url)
        self.model, self.protocol, self.class_names, self.timeout_s = (
            model,
            protocol,
            tuple(class_names),
            timeout_s,
        )

    def infer_raw(self, data: bytes) -> dict[str, np.ndarray]:
        """One request: image bytes -> the response arrays (raises tritonclient's
        InferenceServerException)."""
        inp = self.module.InferInput(INPUT, [1, 1], "BYTES")
        inp.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        outs = [self.module.InferRequestedOutput(name) for name in OUTPUTS]
        kw = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        res = self.client.infer(self.model, [inp], outputs=outs, **kw)
        return {name: res.as_numpy(name) for name in OUTPUTS}

    def detect(self, images) -> list[Detections]:
        """Paths or encoded bytes -> one Detections per image (requests sent one after another)."""
        items = [images] if isinstance(images, (str, os.PathLike, bytes)) else list(images)
        return [
            unpack(
                self.infer_raw(image_bytes(x)),
                self.class_names,
                str(x) if not isinstance(x, bytes) else "",
            )
            for x in items
        ]

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
