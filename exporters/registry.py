"""The model registry: each family module registers its models beside its builder.

    from exporters.registry import BuildRequest, register_model

    @register_model("mynet_s", family="mynet", description="MyNet small")
    def build_mynet(request: BuildRequest) -> ExportableModel:
        ...

:func:`get_model` finds a name, :func:`list_models` lists them all (``edgedet export --list``).
Families inside the ``exporters`` package are found without importing them: the registry reads
their ``@register_model(...)`` lines (literal arguments only) and keeps a lazy ``"module:function"``
entry, so listing pulls in neither torch nor a family's optional package; the module is imported
when a model of it is built, and its decorators then check that they say what was read. A module
outside the package (a user's family, a test's) registers itself when it is imported.
Adding a family is one new file: docs/models.md, "Adding a model family".
"""

from __future__ import annotations

import ast
import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from edgedet.errors import InputError

PACKAGE = Path(__file__).resolve().parent
MARKER = "@register_model("
# --list shows these modules' models first, in this order (the order it has always had); any other
# family module in the package follows, by path. Adding a family does not need a line here.
LIST_ORDER = (
    "exporters.nano.export",
    "exporters.torchvision_det",
    "exporters.yolo",
    "exporters.rcnn",
    "exporters.effdet_det",
    "exporters.detr_hf",
    "exporters.classifiers",
)


@dataclass(frozen=True)
class BuildRequest:
    """What a builder is asked for: the registered name and the export options a model needs."""

    name: str
    imgsz: int | None = None  # square input side; None: the family's default
    num_classes: int | None = None  # a custom-trained head's classes; None: the family's default
    uint8_input: bool = False  # the graph takes uint8 0..255 instead of float32 0..1
    state: dict | None = None  # the --weights state_dict (entries with own_weights: None)
    weights: str | None = None  # the --weights path (own_weights entries open it themselves)
    source: dict = field(default_factory=dict)  # weights record for the manifest
    nms: str = "edgedet"  # the NMS the export will attach; "none" means raw boxes leave the graph


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name and what the pipeline must know about it before building."""

    name: str
    family: str
    description: str
    build: Callable | str  # (BuildRequest) -> ExportableModel, or "module:function" until imported
    task: str = "detect"
    size_multiple: int = 32  # --imgsz must divide by it (stride 32); SSD's fixed heads: 1
    own_weights: bool = False  # the builder opens request.weights itself (Ultralytics, DETR)
    # The network ends in EdgeDetNMS nodes (two-stage: RPN + final NMS): only --nms edgedet or graph
    # can express that, and its thresholds are not graph inputs.
    nms_in_network: bool = False

    @property
    def target(self) -> str:
        """The builder as "module:function"."""
        if isinstance(self.build, str):
            return self.build
        return f"{self.build.__module__}:{self.build.__qualname__}"

    def builder(self) -> Callable:
        """The builder function, importing its module now if the entry is lazy."""
        if callable(self.build):
            return self.build
        module, attr = self.build.split(":")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, request: BuildRequest):
        return self.builder()(request)


# register_model's keyword options
OPTIONS = tuple(
    f.name for f in fields(ModelEntry) if f.name not in ("name", "family", "description", "build")
)
_MODELS: dict[str, ModelEntry] = {}
_scanned = False


def register_model(name: str, *, family: str, description: str, **options) -> Callable:
    """Decorator: register ``name``, built by the decorated ``builder(request) -> ExportableModel``.

    ``options`` are ModelEntry's: task, size_multiple, own_weights, nms_in_network. Stack one
    decorator per name when a builder serves several models (it reads ``request.name``)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(
            f"register_model({name!r}): unknown option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(OPTIONS)}"
        )

    def decorate(fn: Callable) -> Callable:
        _add(ModelEntry(name, family, description, fn, **options))
        return fn

    return decorate


def _add(entry: ModelEntry) -> None:
    _scan()
    old = _MODELS.get(entry.name)
    if old is not None and old.target != entry.target:
        raise ValueError(
            f"model '{entry.name}' is registered twice: by {old.target} and by {entry.target}"
        )
    if old is not None and isinstance(old.build, str) and _declared(old) != _declared(entry):
        raise ValueError(
            f"model '{entry.name}': {entry.target}'s decorator says {_declared(entry)}, its source "
            f"was read as {_declared(old)} (decorator arguments must be literals)"
        )
    _MODELS[entry.name] = entry  # a re-imported module re-registers the same builder


def _declared(entry: ModelEntry) -> dict:
    return {k: getattr(entry, k) for k in ("family", "description", *OPTIONS)}


def get_model(name: str) -> ModelEntry:
    """Look a model up by name; an unknown name suggests the nearest known ones."""
    _scan()
    if name in _MODELS:
        return _MODELS[name]
    near = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise InputError(f"unknown model '{name}'{hint} (`edgedet export --list` shows all)")


def list_models() -> list[ModelEntry]:
    """Every registered model, in --list order."""
    _scan()
    return list(_MODELS.values())


def _scan() -> None:
    """Register the package's family modules lazily, from their source (once per process)."""
    global _scanned
    if _scanned:
        return
    _scanned = True
    found = [(m, p) for m, p in _package_modules() if MARKER in p.read_text(encoding="utf-8")]
    rank = {m: i for i, m in enumerate(LIST_ORDER)}
    for module, path in sorted(found, key=lambda mp: (rank.get(mp[0], len(rank)), mp[0])):
        for entry in declarations(module, path):
            if entry.name in _MODELS:
                raise ValueError(
                    f"model '{entry.name}' is registered twice: by {_MODELS[entry.name].target} "
                    f"and by {entry.target}"
                )
            _MODELS[entry.name] = entry


def _package_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "registry.py":
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            yield ".".join(p for p in parts if p != "__init__"), path


def declarations(module: str, path: Path) -> list[ModelEntry]:
    """The ``@register_model(...)`` decorators of a module's functions, as lazy entries."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        _declared_entry(module, path, node, dec)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        for dec in node.decorator_list
        if isinstance(dec, ast.Call) and _called(dec) == "register_model"
    ]


def _called(call: ast.Call) -> str:
    return getattr(call.func, "id", getattr(call.func, "attr", ""))


def _declared_entry(module: str, path: Path, node: ast.FunctionDef, dec: ast.Call) -> ModelEntry:
    try:
        args = [ast.literal_eval(a) for a in dec.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in dec.keywords}
    except ValueError:
        raise ValueError(
            f"{path}:{dec.lineno}: register_model arguments must be literals "
            "(the registry reads them without importing the module)"
        ) from None
    return ModelEntry(*args, build=f"{module}:{node.name}", **kwargs)
