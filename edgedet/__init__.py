"""edgedet: deploy object detectors to Jetson and desktop GPUs, and prove the result.

The runtime package needs numpy, OpenCV and Pillow only; it never imports torch.

    import edgedet
    detector = edgedet.load("model.onnx")
    detections = detector("photo.jpg")
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "Detector", "Detections"]


def __getattr__(name):  # lazy: `import edgedet` stays cheap and never pulls a backend
    if name == "load":
        from edgedet.loading import load

        return load
    if name == "Detector":
        from edgedet.detector import Detector

        return Detector
    if name == "Detections":
        from edgedet.detections import Detections

        return Detections
    raise AttributeError(f"module 'edgedet' has no attribute {name!r}")
