"""TensorRT plugin libraries: find them, check their hash, load them before deserialisation.

A missing plugin at deserialisation is one of the most reported TensorRT failures, and
TensorRT's own message does not say which file to install. So the manifest of every engine
lists the plugin libraries it was built with (file name, sha256, the creators they
registered), and the runtime resolves and loads each one *before* calling
``deserialize_cuda_engine``, naming the missing file and how to get it.

Search order for a library named in the manifest (first hash match wins; without one, the
first file found is reported as a mismatch):
  1. paths given by the caller (``TensorRTBackend(plugins=[...])``)
  2. ``$EDGEDET_PLUGIN_PATH`` (files or folders, ``os.pathsep``-separated)
  3. the engine's own folder
  4. the absolute path recorded at build time
  5. the default plugin folder: ``<cache>/plugins/<TRT major.minor>/`` then ``<cache>/plugins/``,
     with ``<cache>`` = ``$EDGEDET_CACHE_DIR`` or ``$XDG_CACHE_HOME/edgedet`` or
     ``~/.cache/edgedet``
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgedet.errors import CompatibilityError, InputError
from edgedet.fileio import sha256_file

ENV_VAR = "EDGEDET_PLUGIN_PATH"
BUILD_HINT = "build it on this device with `edgedet plugin build`"


@dataclass(frozen=True)
class Creator:
    """A plugin creator as TensorRT's registry keys it: getCreator(name, version, namespace)."""

    name: str
    version: str = "1"
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.name} v{self.version}" + (
            f" (namespace '{self.namespace}')" if self.namespace else ""
        )


@dataclass
class PluginRecord:
    """One plugin library an engine was built with, as stored in the manifest."""

    file: str  # library file name, e.g. libedgedet_nms_plugin.so
    sha256: str | None = None
    path: str | None = None  # absolute path at build time (a hint, not a requirement)
    creators: list[Creator] = field(default_factory=list)
    serialized: bool = False  # embedded in a version-compatible plan via plugins_to_serialize
    architectures: dict | None = (
        None  # GPU code it holds, from its JSON sidecar (library_architectures)
    )

    def to_dict(self) -> dict:
        return {**asdict(self), "creators": [asdict(c) for c in self.creators]}

    @classmethod
    def from_dict(cls, d: dict) -> PluginRecord:
        return cls(
            d["file"],
            d.get("sha256"),
            d.get("path"),
            [
                Creator(c["name"], str(c.get("version", "1")), c.get("namespace", ""))
                for c in d.get("creators", [])
            ],
            bool(d.get("serialized", False)),
            d.get("architectures"),
        )


@dataclass
class Resolved:
    """Where a plugin library was found (or not) and whether it is the one the engine expects."""

    record: PluginRecord
    path: Path | None
    sha256: str | None
    searched: list[str]

    @property
    def hash_matches(self) -> bool:
        return self.record.sha256 is None or self.sha256 == self.record.sha256


def cache_dir() -> Path:
    """edgedet's cache folder (shared with calibration caches and built plugins)."""
    if os.environ.get("EDGEDET_CACHE_DIR"):
        return Path(os.environ["EDGEDET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgedet"


def default_plugin_dirs(trt_version=None) -> list[Path]:
    """``<cache>/plugins/<major.minor>/`` (plugins are built per TensorRT release) then
    ``<cache>/plugins/``."""
    root = cache_dir() / "plugins"
    versioned = (
        [root / f"{trt_version.major}.{trt_version.minor}"] if trt_version is not None else []
    )
    return versioned + [root]


def search_locations(
    record: PluginRecord, engine_dir: Path | None, extra=(), trt_version=None
) -> list[Path]:
    """Candidate file paths for ``record``, in search order (existing or not, deduplicated)."""
    places: list[Path] = []
    env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    for entry in [*map(Path, extra), *map(Path, env)]:
        places.append(entry / record.file if entry.is_dir() or not entry.suffix else entry)
    if engine_dir is not None:
        places.append(Path(engine_dir) / record.file)
    if record.path:
        places.append(Path(record.path))
    places += [d / record.file for d in default_plugin_dirs(trt_version)]
    seen, out = set(), []
    for p in places:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def resolve(
    record: PluginRecord, engine_dir: Path | None = None, extra=(), trt_version=None
) -> Resolved:
    """Find ``record``'s library: the first file whose sha256 matches, else the first that exists.

    A caller-given path that names a different file is still tried (users rename libraries).
    """
    locations = search_locations(record, engine_dir, extra, trt_version)
    found = [p for p in locations if p.is_file()]
    first = None
    for p in found:
        digest = sha256_file(p)
        if record.sha256 is None or digest == record.sha256:
            return Resolved(record, p, digest, [str(x) for x in locations])
        first = first or (p, digest)
    if first:
        return Resolved(record, first[0], first[1], [str(x) for x in locations])
    return Resolved(record, None, None, [str(x) for x in locations])


def problems(resolved: Resolved, check_hash: bool = True) -> list[str]:
    """Why this plugin stops the engine from loading here (empty when it is fine)."""
    rec = resolved.record
    if rec.serialized:
        return []  # embedded in the plan: the runtime loads it from there (plugins_to_serialize)
    what = ", ".join(map(str, rec.creators)) or "plugins"
    if resolved.path is None:
        shown = ", ".join(resolved.searched[:4]) + (" ..." if len(resolved.searched) > 4 else "")
        return [
            f"plugin library {rec.file} (provides {what}) was not found (searched {shown}); "
            f"{BUILD_HINT}, or point ${ENV_VAR} at it"
        ]
    if check_hash and not resolved.hash_matches:
        return [
            f"plugin library {resolved.path} has sha256 {resolved.sha256[:12]}... but the engine"
            f" was built with {rec.sha256[:12]}...: a different build of {rec.file}; rebuild the"
            f" engine against this library (`edgedet build ... --plugin {resolved.path}`) or"
            " install the library it was built with"
        ]
    return []


# ------------------------------------------------------------------ GPU architectures of a plugin
# library `edgedet plugin build` records in the library's JSON sidecar which GPU code it holds:
# {"sass": ["sm_87"], "ptx": ["compute_87"]}. CUDA's rules (CUDA C++ Programming Guide, "Binary
# Compatibility" / "PTX Compatibility"): SASS for sm_XY runs on compute capability X.Z with Z >= Y;
# PTX for compute_XY is JIT-compiled by the driver for any compute capability >= X.Y.


def library_architectures(path: str | os.PathLike) -> dict | None:
    """The GPU code recorded in ``<library>.json`` ({'sass': [...], 'ptx': [...]}), None when
    unknown."""
    import json

    sidecar = Path(f"{path}.json")
    try:
        arch = json.loads(sidecar.read_text()).get("architectures")
    except (OSError, ValueError, AttributeError):
        return None
    return arch if isinstance(arch, dict) and (arch.get("sass") or arch.get("ptx")) else None


def _cc(code: str) -> tuple[int, int]:
    digits = code.split("_", 1)[1].rstrip("af")
    return int(digits[:-1]), int(digits[-1])


def runs_on(arch: dict, cc: tuple[int, int]) -> bool:
    """Whether GPU code ``arch`` (library_architectures) runs on compute capability ``cc``."""
    sass = any(_cc(c)[0] == cc[0] and _cc(c)[1] <= cc[1] for c in arch.get("sass", []))
    return sass or any(_cc(c) <= cc for c in arch.get("ptx", []))


def describe_architectures(arch: dict) -> str:
    return ", ".join([*arch.get("sass", []), *(f"{c} (PTX)" for c in arch.get("ptx", []))])


def arch_problem(
    path: str | os.PathLike | None,
    cc: tuple[int, int] | None,
    arch: dict | None = None,
    name: str | None = None,
) -> str | None:
    """Why the plugin library at ``path`` has no GPU code for compute capability ``cc`` (None: fine
    or unknown). Its JSON sidecar says what it holds; else ``arch`` (the engine's manifest, e.g. for
    an embedded plugin).
    """
    arch = (library_architectures(path) if path is not None else None) or arch
    if arch is None or cc is None or runs_on(arch, cc):
        return None
    return (
        f"plugin library {path or name} holds GPU code for {describe_architectures(arch)} only, and"
        f" this GPU is compute capability {cc[0]}.{cc[1]} (its kernels would fail with"
        f" cudaErrorNoKernelImageForDevice); {BUILD_HINT}, or build it with `--arch portable` for"
        " several GPUs"
    )


_LOADED: dict[str, list[Creator]] = {}  # realpath -> creators it registered (libraries stay loaded)


def registered_creators(trt_module) -> set[Creator]:
    """Creators in TensorRT's global plugin registry (IPluginRegistry.all_creators, TRT >= 10.0)."""
    reg = trt_module.get_plugin_registry()
    out = set()
    for c in reg.all_creators:
        out.add(Creator(str(c.name), str(c.plugin_version), str(c.plugin_namespace)))
    return out


def load_library(trt_module, path: str | os.PathLike) -> list[Creator]:
    """Load a plugin library into TensorRT's registry; returns the creators it added.

    ``IPluginRegistry.load_library`` serves libraries that export ``getCreators`` /
    ``getPluginCreators`` and returns None on failure (NvInferRuntimeCommon.h: "fail and
    return nullptr if any of the plugins are already registered"); libraries that register
    themselves with REGISTER_TENSORRT_PLUGIN only need to be dlopen'ed, so ctypes is the
    fallback (REGISTER_TENSORRT_PLUGIN in NvInferRuntime.h registers from a static initialiser at
    dlopen time). Loading twice is a no-op.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"plugin library {path} does not exist; {BUILD_HINT}")
    key = os.path.realpath(path)
    if key in _LOADED:
        return _LOADED[key]
    before = registered_creators(trt_module)
    handle = trt_module.get_plugin_registry().load_library(str(path))
    if handle is None:
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise CompatibilityError(
                f"cannot load plugin library {path}: {exc}; it may be built for another "
                f"TensorRT/CUDA version or architecture - {BUILD_HINT}"
            ) from None
    added = sorted(
        registered_creators(trt_module) - before, key=lambda c: (c.name, c.version, c.namespace)
    )
    _LOADED[key] = added
    return added


def missing_creators(trt_module, creators: list[Creator]) -> list[Creator]:
    """Creators not findable via IPluginRegistry.get_creator(name, version, namespace)."""
    reg = trt_module.get_plugin_registry()
    return [c for c in creators if reg.get_creator(c.name, c.version, c.namespace) is None]
