"""``edgedet.load``: open an artifact with the runtime model its manifest's ``task`` names.

Kept apart from the model classes so that ``classifier`` and ``detector`` import in one direction
(classifier -> detector for the shared ``Model`` base), and this module sits above both.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgedet import contract
from edgedet.backends import open_backend
from edgedet.classifier import Classifier
from edgedet.detector import Detector, check_manifest_matches
from edgedet.errors import InputError, ManifestError
from edgedet.manifest import made_by_edgedet, manifest_path, read_manifest, recover


def load(
    path: str | os.PathLike,
    backend: str = "auto",
    verify: bool = True,
    full_decode: bool = False,
    **options,
) -> Detector | Classifier:
    """Open an edgedet artifact (ONNX file or TensorRT engine) for inference.

    The sidecar manifest (``<path>.json``) supplies class names, input spec and NMS
    settings; without one, they are inferred from the graph (generic class names).
    ``options`` go to the backend (e.g. ``providers=["cpu"]`` for ONNX Runtime). A JPEG at least
    twice its letterboxed size decodes at reduced scale (``read_image_for_input``) unless
    ``full_decode``.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"{path} is a folder; give the model file inside it (e.g. {path / 'model.onnx'})"
        )
    if not path.exists():
        raise InputError(f"model file {path} does not exist")
    manifest = read_manifest(path, verify=verify) if _has_manifest(path) else None
    runner = open_backend(path, backend, **options)
    if manifest is not None:
        try:
            check_manifest_matches(manifest, runner, manifest_path(path))
        except BaseException:
            runner.close()
            raise
    classify = manifest is not None and manifest.task == contract.Task.CLASSIFY
    model_class = Classifier if classify else Detector
    model = model_class(path, runner, manifest)
    model.full_decode = full_decode
    return model


def _has_manifest(path: Path) -> bool:
    """A manifest is expected: present, or the artifact says edgedet made it (then its loss is
    an error)."""
    recover(path)  # a write cut short: put the previous complete pair back first
    if manifest_path(path).exists():
        return True
    why = made_by_edgedet(path)
    if why:
        raise ManifestError(
            f"{path} was made by edgedet ({why}) but its manifest "
            f"{manifest_path(path)} is missing; copy the .json beside it or "
            "re-export (without it, class names and NMS settings are unknown)"
        )
    return False
