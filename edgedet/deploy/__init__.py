"""Hand an edgedet artifact to the servers users already run: DeepStream and Triton.

Each target has one module of pure functions that turn a manifest into the target's own
configuration text (``deepstream.py``: nvinfer + deepstream-app; ``triton.py``: a model
repository's ``config.pbtxt``), and one ``write_*`` function that writes the files atomically
(edgedet/fileio.py). What is shared - reading the artifact, copying it, the plugin rule - lives
here. The manifest stays beside the model (``model.onnx.json``, ``model.plan.json``) and is never
written into the model file: DeepStream, Triton and trtexec read a plan file as TensorRT wrote it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgedet import contract
from edgedet.contract import TensorSpec
from edgedet.errors import InputError, ManifestError, require
from edgedet.manifest import Manifest, manifest_path, read_manifest, write_artifact

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass
class Artifact:
    """An edgedet model file and its manifest, as a deploy target sees them."""

    path: Path
    manifest: Manifest

    @property
    def is_engine(self) -> bool:
        return bool(self.manifest.tensorrt) or self.path.suffix.lower() in ENGINE_SUFFIXES

    @property
    def precision(self) -> str:
        """fp32 | fp16 | int8: what the file was quantised to (engines keep their ONNX file's
        mode)."""
        return str(self.manifest.precision.get("mode", "fp32")).lower()


def open_artifact(path: str | os.PathLike) -> Artifact:
    """Read ``path`` and its sidecar manifest (hash checked); a deploy needs the manifest."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    if not manifest_path(path).is_file():
        raise ManifestError(
            f"{path} has no manifest {manifest_path(path)}; deploy configs are generated from it - "
            "export the model with edgedet (or `edgedet attach-nms` for a third-party ONNX)"
        )
    art = Artifact(path, read_manifest(path))
    if not art.manifest.outputs and not art.is_engine:  # manifests of older edgedet: read the graph
        art.manifest.outputs = onnx_outputs(path)
    return art


def onnx_outputs(path: Path) -> list[TensorSpec]:
    """The ONNX graph's outputs as TensorSpecs (-1 for symbolic dims), without loading weights."""
    onnx = require("onnx", "build", f"reading the outputs of {path.name}")
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and others for a corrupt file
        raise InputError(
            f"{path} is not a readable ONNX file ({type(exc).__name__}: {exc})"
        ) from None

    def spec(vi):
        t = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        return TensorSpec(vi.name, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, dims)

    return [spec(o) for o in graph.output]


def output_names(manifest: Manifest) -> list[str]:
    """The graph's outputs in graph order (the order TensorRT and DeepStream bind them)."""
    if not manifest.outputs:
        raise ManifestError(
            f"the manifest of {manifest.model} lists no outputs (written by an older edgedet); "
            "re-export the model"
        )
    return [o.name for o in manifest.outputs]


def plugins_to_load(manifest: Manifest) -> list[str]:
    """The plugin libraries an engine needs loaded into the host process (path when recorded, else
    file name);
    empty when there is none or the plan carries them (version-compatible: plugins_to_serialize).

    DeepStream and Triton load plugin libraries with dlopen only (LD_PRELOAD; Triton also
    --backend-config=tensorrt,plugins=<lib>), never through IPluginRegistry::loadLibrary. edgedet's
    EdgeDetNMS library registers its creator when it is loaded
    (edgedet/csrc/plugin/edgedet_nms_plugin.cpp,
    "registration at load time"), so dlopen is enough; a library built by an edgedet without that
    registers only through getCreators() and must be rebuilt (`edgedet plugin build`).
    """
    plugins = manifest.tensorrt.plugins if manifest.tensorrt else []
    return [p.path or p.file for p in plugins if not p.serialized]


PLUGIN_REBUILD_NOTE = (
    "the library registers EdgeDetNMS when loaded; one built before that registered only through "
    "IPluginRegistry::loadLibrary: rebuild it with `edgedet plugin build` for this TensorRT"
)


def copy_artifact(art: Artifact, target: Path) -> Path:
    """Copy the model to ``target`` atomically and write its manifest beside it (re-hashed)."""
    manifest = Manifest.from_dict(art.manifest.to_dict())
    write_artifact(target, lambda tmp: shutil.copyfile(art.path, tmp), manifest)  # one transaction
    return target


def check_detector_input(manifest: Manifest, host: str) -> None:
    """Both hosts feed ``images`` as [B, 3, H, W]; refuse what they cannot build a feed for."""
    shape = manifest.input.shape
    if len(shape) != 4 or shape[1] != 3 or shape[2] < 1 or shape[3] < 1:
        raise InputError(
            f"{host} needs a [B, 3, H, W] input with fixed H and W; {manifest.model} has"
            f" {list(shape)}"
        )
    if manifest.input.name != contract.INPUT_NAME:
        raise ManifestError(
            f"input is named {manifest.input.name!r}, the contract says {contract.INPUT_NAME!r}"
        )
