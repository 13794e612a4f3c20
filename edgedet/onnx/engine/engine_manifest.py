"""The engine manifest: the source ONNX manifest plus a ``tensorrt`` section.

Everything a runtime needs to use the engine correctly (class names, input spec, output
form, NMS parameters) is copied from the ONNX file's manifest; the ``tensorrt`` section adds
what decides whether the plan can load on a machine (TensorRT release, GPU, hardware and
version compatibility, plugin files and hashes) and how it was built.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgedet.backends.base import IOSpec
from edgedet.manifest import Manifest, TensorRTSection


@dataclasses.dataclass
class _IOShim:
    """Just enough of a backend for edgedet.detector.infer_manifest."""

    inputs: list
    outputs: list


def manifest_from_onnx_io(onnx_path: Path, inputs, outputs) -> Manifest:
    """A manifest for a contract ONNX file that came without one (generic class names)."""
    import numpy as np

    from edgedet.detector import infer_manifest

    def spec(t):
        return IOSpec(t.name, np.dtype(t.dtype), tuple(None if d < 0 else d for d in t.shape))

    m = infer_manifest(_IOShim([spec(t) for t in inputs], [spec(t) for t in outputs]))
    m.model = onnx_path.stem
    m.outputs = list(outputs)
    return m


def engine_manifest(
    source: Manifest,
    onnx_path: Path,
    onnx_sha256: str,
    dynamic: bool,
    section: TensorRTSection,
    build_notes: dict,
) -> Manifest:
    """``source`` (the ONNX manifest) re-targeted at the engine: batch, source link, tensorrt
    section."""
    shape = list(source.input.shape)
    shape[0] = -1 if dynamic else (shape[0] if shape[0] > 0 else 1)
    return dataclasses.replace(
        source,
        input=dataclasses.replace(source.input, shape=tuple(shape)),
        precision={**source.precision, "engine": section.precision},
        source={
            "artifact": onnx_path.name,
            "format": "onnx",
            "sha256": onnx_sha256,
            "upstream": source.source,
        },
        notes={**source.notes, "engine_build": build_notes},
        tensorrt=section,
        artifact={},
        tools={},
        created="",
    )
