"""The sidecar manifest: ``<artifact>.json`` beside every ONNX file and engine.

It records what a runtime needs to use the artifact correctly (input spec, class
names, output form, where NMS runs and with which parameters, precision) and how
the artifact came to be (source file and hash, tool versions). Written atomically,
after the artifact itself, with the artifact's sha256 so a stale sidecar is caught.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from edgedet import contract
from edgedet.errors import ManifestError
from edgedet.fileio import sha256_file, write_text_atomic
from edgedet.nms.params import NMSParams

SCHEMA = "edgedet.manifest/1"

NMS_WHERE = ("graph", "host", "none")


def manifest_path(artifact: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: the sidecar never collides across formats."""
    return Path(f"{os.fspath(artifact)}.json")


@dataclass
class InputInfo:
    """The ``images`` input: [B, 3, H, W] RGB, letterboxed; B = -1 when dynamic."""

    name: str = contract.INPUT_NAME
    shape: tuple[int, int, int, int] = (1, 3, 320, 320)
    dtype: str = "float32"
    pad_value: int = contract.DEFAULT_PAD_VALUE
    resize: str = "letterbox"  # letterbox (keep aspect, pad) | stretch (resize to H x W, aspect not kept)
    padding: str = "center"  # letterbox padding: center (split on both sides) | top-left (YOLOX: all right/bottom)
    channel_order: str = "RGB"  # what the runtime feeds: RGB (the contract) | BGR

    @property
    def height(self) -> int:
        return int(self.shape[2])

    @property
    def width(self) -> int:
        return int(self.shape[3])

    @property
    def batch(self) -> int:
        """Fixed batch size, or -1 when the batch dimension is dynamic."""
        return int(self.shape[0])

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> "InputInfo":
        return cls(d.get("name", contract.INPUT_NAME), tuple(int(x) for x in d["shape"]),
                   d.get("dtype", "float32"), int(d.get("pad_value", contract.DEFAULT_PAD_VALUE)),
                   d.get("resize", "letterbox"), d.get("padding", "center"), d.get("channel_order", "RGB"))


@dataclass
class Manifest:
    family: str
    model: str
    class_names: list[str]
    input: InputInfo
    output_kind: str  # contract.KIND_NMS | contract.KIND_RAW
    outputs: list[contract.TensorSpec] = field(default_factory=list)
    task: str = "detect"
    # COCO category id of each class index (torchvision models: the index itself; nano: index + 1)
    category_ids: list[int] | None = None
    nms: NMSParams | None = None
    nms_where: str = "graph"  # graph | host | none
    nms_implementation: str = "graph"  # graph | edgedet | efficient | host
    normalization: dict = field(default_factory=lambda: {"mean": [0.0] * 3, "std": [1.0] * 3, "in_graph": True})
    precision: dict = field(default_factory=lambda: {"mode": "fp32"})
    source: dict = field(default_factory=dict)
    artifact: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    # TensorRT engines only (`edgedet build`): version, GPU, profiles, plugins; see docs/tensorrt.md
    tensorrt: dict = field(default_factory=dict)
    created: str = ""
    schema: str = SCHEMA

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["input"] = self.input.to_dict()
        d["outputs"] = [o.to_dict() for o in self.outputs]
        d["nms"] = self.nms.to_dict() if self.nms else None
        if not d["tensorrt"]:
            del d["tensorrt"]  # ONNX manifests stay as they were
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "manifest") -> "Manifest":
        if d.get("schema") != SCHEMA:
            raise ManifestError(f"{where}: schema {d.get('schema')!r} is not {SCHEMA!r}; re-export the model with this edgedet")
        try:
            known = {f.name for f in dataclasses.fields(cls)}
            kw = {k: v for k, v in d.items() if k in known}
            kw["input"] = InputInfo.from_dict(d["input"])
            kw["outputs"] = [contract.TensorSpec.from_dict(o) for o in d.get("outputs", [])]
            kw["nms"] = NMSParams.from_dict(d["nms"]) if d.get("nms") else None
            return cls(**kw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: malformed manifest ({type(exc).__name__}: {exc}); re-export the model") from None


def tool_versions(extra: tuple[str, ...] = ()) -> dict:
    """Versions of the packages that shaped an artifact (only those already imported or asked for)."""
    import importlib.metadata as md
    import sys

    names = ("edgedet", "numpy", "onnx", "onnxruntime", "onnxslim", "torch", "torchvision", "tensorrt") + extra
    out = {"python": platform.python_version()}
    for name in names:
        if name in sys.modules or name in extra or name == "edgedet":
            try:
                out[name] = md.version(name)
            except md.PackageNotFoundError:
                mod = sys.modules.get(name)
                if mod is not None and getattr(mod, "__version__", None):
                    out[name] = mod.__version__
    return out


def write_manifest(artifact: str | os.PathLike, manifest: Manifest) -> Path:
    """Hash ``artifact``, stamp the manifest and write ``<artifact>.json`` atomically."""
    artifact = Path(artifact)
    manifest.artifact = {
        "file": artifact.name,
        "format": artifact.suffix.lstrip(".") or "bin",
        "bytes": artifact.stat().st_size,
        "sha256": sha256_file(artifact),
    }
    manifest.created = manifest.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    manifest.tools = {**tool_versions(), **manifest.tools}
    path = manifest_path(artifact)
    write_text_atomic(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def read_manifest(artifact: str | os.PathLike, verify: bool = True) -> Manifest:
    """Read ``<artifact>.json``; with ``verify`` check it describes these exact bytes."""
    path = manifest_path(artifact)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"no manifest {path} beside {artifact}; export with edgedet or use attach-nms") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {path} is unreadable ({exc}); re-export the model") from None
    manifest = Manifest.from_dict(d, where=str(path))
    if verify and manifest.artifact.get("sha256"):
        size = Path(artifact).stat().st_size
        if size != manifest.artifact.get("bytes") or sha256_file(artifact) != manifest.artifact["sha256"]:
            raise ManifestError(
                f"{artifact} does not match its manifest {path} (size/sha256 differ): the file was changed "
                "or truncated after export; re-export it, or pass verify=False to skip this check"
            )
    return manifest
