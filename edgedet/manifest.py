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
from edgedet.errors import EdgeDetError, ManifestError
from edgedet.fileio import commit_pair, journal_path, recover_pair, sha256_file, write_text_atomic
from edgedet.nms.params import NMSParams
from edgedet.trt.plugins import PluginRecord

SCHEMA = "edgedet.manifest/1"

NMS_WHERE = contract.NMSWhere.values()


def manifest_path(artifact: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: the sidecar never collides across formats."""
    return Path(f"{os.fspath(artifact)}.json")


@dataclass
class InputInfo:
    """The ``images`` input: [B, 3, H, W] RGB, letterboxed; B = -1 when dynamic."""

    name: str = contract.INPUT_NAME
    shape: tuple[int, int, int, int] = (1, 3, 320, 320)
    dtype: str = contract.InputDType.FLOAT32
    pad_value: int = contract.DEFAULT_PAD_VALUE
    # letterbox (keep aspect, pad) | stretch (resize to H x W, aspect not kept)
    resize: str = contract.Resize.LETTERBOX
    # letterbox padding: center (split on both sides) | top-left (YOLOX: all right/bottom)
    padding: str = contract.Padding.CENTER
    channel_order: str = contract.ChannelOrder.RGB  # what the runtime feeds: RGB (contract) | BGR

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
    def from_dict(cls, d: dict) -> InputInfo:
        return cls(
            d.get("name", contract.INPUT_NAME),
            tuple(int(x) for x in d["shape"]),
            d.get("dtype", "float32"),
            int(d.get("pad_value", contract.DEFAULT_PAD_VALUE)),
            d.get("resize", "letterbox"),
            d.get("padding", "center"),
            d.get("channel_order", "RGB"),
        )


@dataclass
class TensorRTSection:
    """The ``tensorrt`` section of an engine's manifest (written by ``edgedet build``): what
    decides whether the plan loads on a machine (release, GPU, compatibility flags, plugins) and
    how it was built. Keys a newer edgedet may add are kept in ``extra``: a round trip loses
    nothing."""

    version: str  # TensorRT release that built the plan, e.g. 10.3.0.30
    module: str = "tensorrt"  # the Python module that built it
    precision: str = contract.EnginePrecision.STRONGLY_TYPED  # contract.EnginePrecision
    network_flags: list[str] = field(default_factory=list)  # NetworkDefinitionCreationFlag names
    builder_flags: list[str] = field(default_factory=list)  # BuilderFlag names
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compatibility_level: str = contract.HardwareCompatibility.NONE
    gpu: dict = field(default_factory=dict)  # name, compute_capability ("8.7"), integrated
    # per optimisation profile: [{name, min, opt, max}] per dynamic input
    profiles: list[list[dict]] = field(default_factory=list)
    plugins: list[PluginRecord] = field(default_factory=list)
    # layers TensorRT built from a plugin (0: the NMS function body ran as standard ops)
    plugin_layers: int = 0
    nms_function_stripped: bool = False  # the EdgeDetNMS local function was removed before parsing
    dla_core: int | None = None
    builder_optimization_level: int | None = None
    workspace_bytes: int | None = None
    timing_cache: str | None = None  # file name of the timing cache used
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d["plugins"] = [p.to_dict() for p in self.plugins]
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> TensorRTSection:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        kw["plugins"] = [PluginRecord.from_dict(p) for p in d.get("plugins", [])]
        return cls(**kw, extra={k: v for k, v in d.items() if k not in known})


def _check_tensorrt(t: dict, where: str) -> None:
    """The ``tensorrt`` section's schema (an empty object means none)."""
    if not t:
        return
    if not isinstance(t.get("version"), str):
        raise _field_error(where, "tensorrt.version", "is missing or not a string")
    for name, kind in (
        ("gpu", dict),
        ("profiles", list),
        ("plugins", list),
        ("network_flags", list),
        ("builder_flags", list),
    ):
        if not isinstance(t.get(name, kind()), kind):
            what = "an object" if kind is dict else "a list"
            raise _field_error(where, f"tensorrt.{name}", f"must be {what}")
    plugins = t.get("plugins", [])
    if not all(isinstance(p, dict) and isinstance(p.get("file"), str) for p in plugins):
        raise _field_error(
            where, "tensorrt.plugins", "must be a list of objects, each with a 'file' string"
        )


@dataclass
class Manifest:
    family: str
    model: str
    class_names: list[str]
    input: InputInfo
    output_kind: str  # contract.OutputKind
    outputs: list[contract.TensorSpec] = field(default_factory=list)
    task: str = contract.Task.DETECT
    # COCO category id of each class index (torchvision models: the index itself; nano: index + 1)
    category_ids: list[int] | None = None
    nms: NMSParams | None = None
    nms_where: str = contract.NMSWhere.GRAPH  # contract.NMSWhere
    nms_implementation: str = contract.NMSImplementation.GRAPH  # contract.NMSImplementation
    normalization: dict = field(
        default_factory=lambda: {"mean": [0.0] * 3, "std": [1.0] * 3, "in_graph": True}
    )
    precision: dict = field(default_factory=lambda: {"mode": "fp32"})
    source: dict = field(default_factory=dict)
    artifact: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    # TensorRT engines only (`edgedet build`): version, GPU, profiles, plugins; see docs/tensorrt.md
    tensorrt: TensorRTSection | None = None
    created: str = ""
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if isinstance(self.tensorrt, dict):  # the section as JSON holds it ({} = none)
            self.tensorrt = TensorRTSection.from_dict(self.tensorrt) if self.tensorrt else None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["input"] = self.input.to_dict()
        d["outputs"] = [o.to_dict() for o in self.outputs]
        d["nms"] = self.nms.to_dict() if self.nms else None
        if self.tensorrt:
            d["tensorrt"] = self.tensorrt.to_dict()
        else:
            del d["tensorrt"]  # ONNX manifests stay as they were
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "manifest") -> Manifest:
        validate(d, where)
        if d.get("schema") != SCHEMA:
            raise ManifestError(
                f"{where}: schema {d.get('schema')!r} is not {SCHEMA!r}; re-export the model with"
                " this edgedet"
            )
        try:
            known = {f.name for f in dataclasses.fields(cls)}
            kw = {k: v for k, v in d.items() if k in known}
            kw["input"] = InputInfo.from_dict(d["input"])
            for name, vocab in VOCABULARIES.items():  # validated above: the values are members
                if name in kw:
                    kw[name] = vocab(kw[name])
            kw["outputs"] = [contract.TensorSpec.from_dict(o) for o in d.get("outputs", [])]
            try:
                kw["nms"] = NMSParams.from_dict(d["nms"]) if d.get("nms") else None
            except (EdgeDetError, TypeError, ValueError) as exc:
                raise _field_error(where, "nms", f"is invalid ({exc})") from None
            try:
                section = d.get("tensorrt")
                kw["tensorrt"] = TensorRTSection.from_dict(section) if section else None
            except (KeyError, TypeError, ValueError) as exc:
                raise _field_error(
                    where, "tensorrt", f"is invalid ({type(exc).__name__}: {exc})"
                ) from None
            return cls(**kw)
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(
                f"{where}: malformed manifest ({type(exc).__name__}: {exc}); re-export the model"
            ) from None


VOCABULARIES = {
    "task": contract.Task,
    "output_kind": contract.OutputKind,
    "nms_where": contract.NMSWhere,
    "nms_implementation": contract.NMSImplementation,
}
TASKS = {
    contract.Task.DETECT: (contract.OutputKind.NMS, contract.OutputKind.RAW),
    contract.Task.CLASSIFY: (contract.OutputKind.CLASSIFY,),
}


def _field_error(where: str, name: str, problem: str) -> ManifestError:
    return ManifestError(
        f"manifest {where}: field '{name}' {problem}; re-export the model (or fix that field)"
    )


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages."""
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        type(None): "null",
        int: "number",
        float: "number",
    }.get(type(value), type(value).__name__)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate(d, where: str = "manifest") -> None:
    """The one manifest schema, checked when a manifest is read: ManifestError naming the field."""
    if not isinstance(d, dict):
        raise ManifestError(
            f"manifest {where} holds a JSON {json_type(d)}, not an object; re-export the model"
        )
    if d.get("schema") != SCHEMA:
        raise _field_error(where, "schema", f"is {d.get('schema')!r}, not {SCHEMA!r}")
    for name in ("family", "model"):
        if not isinstance(d.get(name), str):
            raise _field_error(where, name, "is missing or not a string")
    names = d.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _field_error(
            where, "class_names", f"must be a list of strings, not {type(names).__name__}"
        )
    task = d.get("task", "detect")
    if task not in TASKS:
        raise _field_error(where, "task", f"is {task!r}, not one of {', '.join(TASKS)}")
    kind = d.get("output_kind")
    if kind not in TASKS[task]:
        raise _field_error(
            where,
            "output_kind",
            f"is {kind!r}, but task {task!r} needs {' or '.join(repr(k) for k in TASKS[task])}",
        )
    inp = d.get("input")
    if not isinstance(inp, dict):
        raise _field_error(where, "input", "is missing or not an object")
    shape = inp.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(_is_int(x) for x in shape)
        or shape[1] != 3
        or shape[2] < 1
        or shape[3] < 1
        or not (shape[0] == -1 or shape[0] >= 1)
    ):
        raise _field_error(
            where, "input.shape", f"is {shape!r}; it must be [B, 3, H, W] with B >= 1 or -1"
        )
    if inp.get("dtype", "float32") not in contract.INPUT_DTYPES:
        raise _field_error(
            where,
            "input.dtype",
            f"is {inp.get('dtype')!r}, not one of {', '.join(contract.INPUT_DTYPES)}",
        )
    pad = inp.get("pad_value", contract.DEFAULT_PAD_VALUE)
    if not _is_int(pad) or not 0 <= pad <= 255:
        raise _field_error(where, "input.pad_value", f"is {pad!r}; it must be an integer 0..255")
    for name in ("name", "resize"):
        if not isinstance(inp.get(name, ""), str):
            raise _field_error(where, f"input.{name}", "must be a string")
    ids = d.get("category_ids")
    if ids is not None and (
        not isinstance(ids, list) or len(ids) != len(names) or not all(_is_int(i) for i in ids)
    ):
        raise _field_error(
            where,
            "category_ids",
            f"must list one integer per class ({len(names)}), "
            f"got {len(ids) if isinstance(ids, list) else type(ids).__name__}",
        )
    if d.get("nms_where", "graph") not in NMS_WHERE:
        raise _field_error(
            where, "nms_where", f"is {d.get('nms_where')!r}, not one of {', '.join(NMS_WHERE)}"
        )
    if d.get("nms_implementation", "graph") not in contract.NMSImplementation.values():
        raise _field_error(
            where,
            "nms_implementation",
            f"is {d.get('nms_implementation')!r}, "
            f"not one of {', '.join(contract.NMSImplementation.values())}",
        )
    if d.get("nms") is not None and not isinstance(d["nms"], dict):
        raise _field_error(where, "nms", "must be an object or null")
    if not isinstance(d.get("outputs", []), list) or not all(
        isinstance(o, dict) for o in d.get("outputs", [])
    ):
        raise _field_error(where, "outputs", "must be a list of objects")
    for name in ("normalization", "precision", "source", "artifact", "tools", "notes", "tensorrt"):
        if not isinstance(d.get(name, {}), dict):
            raise _field_error(where, name, "must be an object")
    _check_tensorrt(d.get("tensorrt", {}), where)


def tool_versions(extra: tuple[str, ...] = ()) -> dict:
    """Versions of the packages that shaped an artifact (only those already imported or asked
    for)."""
    import importlib.metadata as md
    import sys

    names = (
        "edgedet",
        "numpy",
        "onnx",
        "onnxruntime",
        "onnxslim",
        "torch",
        "torchvision",
        "tensorrt",
    ) + extra
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
    _stamp(manifest, artifact)
    path = manifest_path(artifact)
    write_text_atomic(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


ONNX_MARK = "edgedet.artifact"  # metadata_props key of every ONNX file edgedet writes


def _stamp(manifest: Manifest, output: Path) -> None:
    manifest.created = manifest.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    manifest.tools = {**tool_versions(), **manifest.tools}


def pair_complete(artifact: str | os.PathLike, sidecar: str | os.PathLike) -> bool:
    """True when ``sidecar`` is a manifest describing exactly the bytes of ``artifact``."""
    try:
        rec = json.loads(Path(sidecar).read_bytes()).get("artifact", {})
        return Path(artifact).stat().st_size == rec.get("bytes") and sha256_file(
            artifact
        ) == rec.get("sha256")
    except (OSError, ValueError, AttributeError):
        return False


def write_artifact(output: str | os.PathLike, data, manifest: Manifest) -> Path:
    """Write an artifact and its manifest as one transaction (see ``edgedet.fileio.commit_pair``).

    ``data`` is bytes-like, or a callable that writes the artifact into the temporary path it is
    given. On any failure or interrupt the previous pair (or nothing) stays on disk, never a mixed
    pair.
    """
    output = Path(output)

    def write(tmp: Path) -> None:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb") as fh:
                fh.write(memoryview(data))

    def sidecar_for(tmp: Path) -> bytes:
        manifest.artifact = {
            "file": output.name,
            "format": output.suffix.lstrip(".") or "bin",
            "bytes": tmp.stat().st_size,
            "sha256": sha256_file(tmp),
        }
        _stamp(manifest, output)
        return (json.dumps(manifest.to_dict(), indent=2) + "\n").encode()

    commit_pair(output, manifest_path(output), write, sidecar_for, pair_complete)
    return output


def write_onnx_artifact(model, output: str | os.PathLike, manifest: Manifest) -> Path:
    """Mark an ONNX ModelProto as edgedet's (so it is refused without its manifest), then
    write_artifact."""
    for prop in list(model.metadata_props):
        if prop.key == ONNX_MARK:
            model.metadata_props.remove(prop)
    mark = model.metadata_props.add()
    mark.key, mark.value = ONNX_MARK, "its manifest is the .json file beside it"
    return write_artifact(output, model.SerializeToString(), manifest)


def recover(artifact: str | os.PathLike) -> None:
    """Finish a write cut short (power loss, kill -9) before reading: previous pair back, or new
    kept."""
    if journal_path(artifact).exists():
        try:
            recover_pair(artifact, manifest_path(artifact), pair_complete)
        except OSError as exc:
            raise ManifestError(
                f"{artifact}: an interrupted write left {journal_path(artifact)} and it cannot be "
                f"recovered here ({exc.strerror}); re-export the model"
            ) from None


def made_by_edgedet(artifact: str | os.PathLike) -> str | None:
    """Why ``artifact`` (with no manifest) must be one of ours, or None: the ONNX mark or EdgeDetNMS
    op."""
    path = Path(artifact)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if ONNX_MARK.encode() in data:
        return f"it carries edgedet's '{ONNX_MARK}' mark"
    if b"EdgeDetNMS" in data:
        return "it uses edgedet's EdgeDetNMS operation"
    return None


def read_manifest(artifact: str | os.PathLike, verify: bool = True) -> Manifest:
    """Read ``<artifact>.json``; with ``verify`` check it describes these exact bytes."""
    path = manifest_path(artifact)
    recover(artifact)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(
            f"no manifest {path} beside {artifact}; export with edgedet or use attach-nms"
        ) from None
    except OSError as exc:
        raise ManifestError(
            f"manifest {path} cannot be read ({exc.strerror}); check its permissions"
        ) from None
    try:
        d = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {path} is not UTF-8 text; re-export the model") from None
    except ValueError as exc:
        raise ManifestError(
            f"manifest {path} is not valid JSON ({exc}); re-export the model"
        ) from None
    manifest = Manifest.from_dict(d, where=str(path))
    if verify and manifest.artifact.get("sha256"):
        size = Path(artifact).stat().st_size
        if (
            size != manifest.artifact.get("bytes")
            or sha256_file(artifact) != manifest.artifact["sha256"]
        ):
            raise ManifestError(
                f"{artifact} does not match its manifest {path} (size/sha256 differ): the file was"
                " changed or truncated after export; re-export it, or pass verify=False to skip"
                " this check"
            )
    return manifest


def random_weights_note(manifest: Manifest, name) -> str | None:
    """A warning when the artifact (or the model it was quantised/built from) has random weights."""
    source = manifest.source or {}
    while isinstance(source, dict):
        if source.get("random_init"):
            return (
                f"{name} has randomly initialised weights (exported without --weights): its"
                " detections mean nothing; re-export with --weights FILE (a torchvision"
                " state_dict) for real results"
            )
        source = source.get("from")
    return None
