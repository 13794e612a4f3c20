"""Compile the EdgeDetNMS TensorRT plugin on this machine: `edgedet plugin build`.

    build_plugin(tensorrt_include=None, output=None, arch=None, cuda_home=None) -> PluginBuild

Sources: ``edgedet/csrc/nms_kernels.cu`` (C ABI, no TensorRT include) and
``edgedet/csrc/plugin/edgedet_nms_plugin.cpp`` (IPluginV3). The plugin is compiled against the
TensorRT C++ headers found here, because a plugin is built per TensorRT release; its default home
is ``<cache>/plugins/<TRT major.minor>/libedgedet_nms_plugin.so``, where
:mod:`edgedet.trt.plugins` looks for it. A ``.json`` sidecar records what went in.

The library is linked against the CUDA runtime only, not libnvinfer: the plugin calls TensorRT
through its interfaces (virtual methods and inline header code), as NVIDIA's own
version-compatible plugin library does, so it loads into the full and the lean runtime alike
and needs no ``libnvinfer.so`` / ``libnvinfer.so.10`` / ``nvinfer_10`` naming decision.

Headers: pip wheels of TensorRT ship no C++ headers (TensorRT install guide 11.x: "C++ headers
... included with every method except pip"); JetPack and NVIDIA's Debian repository install them
under ``/usr/include/<triplet>``, the tarball under ``<root>/include``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgedet.cuda_build import CSRC, default_arch, nvcc_command, nvcc_path, run_nvcc
from edgedet.errors import DependencyError, EdgeDetError, InputError
from edgedet.fileio import atomic_path, check_writable, sha256_file, write_text_atomic
from edgedet.nms import opdef
from edgedet.trt.version import TRTVersion

SOURCES = ("nms_kernels.cu", "plugin/edgedet_nms_plugin.cpp")  # relative to CSRC
HEADERS = ("NvInfer.h", "NvInferVersion.h")
MANIFEST_SCHEMA = "edgedet.plugin/1"
_ARCH = re.compile(r"(sm|compute)_\d+[af]?|native|all|all-major|portable")
# `--arch portable`: machine code for the common data-centre, desktop and Jetson Orin (sm_87) GPUs
# of compute capability 8.x-9.0, plus compute_80 PTX that the driver JIT-compiles for any later GPU
# - what an engine built with --hardware-compat ampere_plus (compute capability 8.0+) needs from its
# plugin.
PORTABLE_SASS = ("sm_80", "sm_86", "sm_87", "sm_89", "sm_90")
PORTABLE_PTX = ("compute_80",)

HOWTO_HEADERS = (
    "on Jetson (JetPack) or with NVIDIA's Debian repository `sudo apt install libnvinfer-dev` (part"
    " of `tensorrt-dev`); with the TensorRT tarball set TENSORRT_ROOT to its folder; pip wheels"
    " carry no C++ headers - pass --tensorrt-include DIR with the include/ folder of the tarball or"
    " of the matching release branch of github.com/NVIDIA/TensorRT (same major.minor as the"
    " TensorRT that will load the plugin)"
)


@dataclass(frozen=True)
class TensorRTHeaders:
    """A folder holding NvInfer.h and NvInferVersion.h, and the version the latter declares."""

    include: Path
    version: TRTVersion


@dataclass
class PluginBuild:
    path: Path
    manifest: dict
    command: list[str]
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ headers


def header_search_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Where NvInfer.h is looked for, in order. An explicit folder is the only candidate."""
    if explicit:
        return [Path(explicit)]
    dirs = []
    if os.environ.get("TENSORRT_ROOT"):
        dirs.append(Path(os.environ["TENSORRT_ROOT"]) / "include")
    dirs += [
        Path("/usr/include/aarch64-linux-gnu"),  # JetPack, NVIDIA's arm64 Debian packages
        Path("/usr/include/x86_64-linux-gnu"),  # NVIDIA's x86-64 Debian packages
        Path("/usr/include"),
        Path("/usr/local/tensorrt/include"),
        Path("/opt/tensorrt/include"),
    ]
    return dirs


def read_header_version(path: str | os.PathLike) -> TRTVersion:
    """NV_TENSORRT_MAJOR/MINOR/PATCH/BUILD from NvInferVersion.h.

    10.3-10.11 define them as numbers; from 10.12 (and in 11.x) they alias TRT_MAJOR_ENTERPRISE etc.
    (include/NvInferVersion.h at tags v10.3.0, release/10.12, v11.1), so aliases are followed.
    """
    macros = dict(
        re.findall(
            r"^\s*#\s*define\s+(\w+)\s+([\w.]+)", Path(path).read_text(errors="replace"), re.M
        )
    )

    def value(name: str, depth: int = 0):
        v = macros.get(name)
        while v is not None and not v.isdigit() and depth < 8:
            v, depth = macros.get(v), depth + 1
        return int(v) if v is not None and v.isdigit() else None

    parts = [value(f"NV_TENSORRT_{p}") for p in ("MAJOR", "MINOR", "PATCH", "BUILD")]
    if parts[0] is None or parts[1] is None:
        raise InputError(
            f"{path} does not define NV_TENSORRT_MAJOR/NV_TENSORRT_MINOR; is it TensorRT's"
            " NvInferVersion.h?"
        )
    return TRTVersion(*(p or 0 for p in parts))


def find_headers(
    explicit: str | os.PathLike | None = None, candidates: list[Path] | None = None
) -> TensorRTHeaders:
    """The first folder with TensorRT's headers; DependencyError naming every folder searched."""
    searched = candidates if candidates is not None else header_search_dirs(explicit)
    for d in searched:
        if all((d / h).is_file() for h in HEADERS):
            version = read_header_version(d / "NvInferVersion.h")
            if not version.features.supported:
                raise DependencyError(
                    f"the TensorRT headers in {d} are version {version}; the EdgeDetNMS plugin"
                    " needs TensorRT 10.3 to 11.x (IPluginV3)"
                )
            return TensorRTHeaders(d, version)
    where = ", ".join(map(str, searched))
    raise DependencyError(
        f"TensorRT C++ headers ({' and '.join(HEADERS)}) were not found (searched {where}); get"
        " them: " + HOWTO_HEADERS
    )


# ------------------------------------------------------------------ compiler


def nvcc_for(cuda_home: str | os.PathLike | None = None) -> str:
    """nvcc under ``cuda_home`` when given, else edgedet.cuda_build.nvcc_path() (PATH,
    $CUDA_HOME)."""
    if cuda_home:
        nvcc = Path(cuda_home) / "bin" / "nvcc"
        if not nvcc.is_file():
            raise DependencyError(
                f"nvcc was not found at {nvcc} (--cuda-home {cuda_home}); give the CUDA toolkit's "
                "folder, e.g. /usr/local/cuda"
            )
        return str(nvcc)
    return nvcc_path()


def arch_flags(arch: str | None) -> list[str]:
    """``--arch sm_87`` -> ['-arch=sm_87']; ``portable`` -> -gencode for PORTABLE_SASS +
    PORTABLE_PTX; None -> -arch=native with a GPU, else nvcc's default."""
    if arch is None:
        return default_arch()
    if not _ARCH.fullmatch(arch):
        raise InputError(
            f"--arch '{arch}' is not a CUDA architecture (e.g. sm_87 for Jetson Orin, sm_90,"
            " native, portable)"
        )
    if arch == "portable":
        return [f"-gencode=arch=compute_{s[3:]},code={s}" for s in PORTABLE_SASS] + [
            f"-gencode=arch={p},code={p}" for p in PORTABLE_PTX
        ]
    return [f"-arch={arch}"]


def architectures(flags: list[str], gpu_capabilities: list[str] | None = None) -> dict | None:
    """The GPU code ``flags`` put into the library, as {'sass': [...], 'ptx': [...]}; None when
    unknown.

    nvcc (CUDA 13 docs, --gpu-architecture): -arch=sm_XY is short for -arch=compute_XY
    -code=sm_XY,compute_XY (machine code and PTX); -arch=native builds machine code, no PTX, for the
    GPUs of this machine (``gpu_capabilities``, e.g. ['8.7']); without -arch, nvcc's default
    architecture, not recorded here.
    """
    sass: list[str] = []
    ptx: list[str] = []
    for f in flags:
        if f == "-arch=native":
            if not gpu_capabilities:
                return None
            sass += [f"sm_{c.replace('.', '')}" for c in gpu_capabilities]
        elif f.startswith("-arch=sm_") or f.startswith("-arch=compute_"):
            code = f.split("=", 1)[1]
            sass += [code] if code.startswith("sm_") else []
            ptx.append("compute_" + code.split("_", 1)[1])
        elif f.startswith("-gencode="):
            code = f.rsplit("code=", 1)[1]
            (sass if code.startswith("sm_") else ptx).append(code)
        elif f.startswith("-arch="):  # all, all-major: every architecture nvcc knows
            return None
    return {"sass": sorted(set(sass)), "ptx": sorted(set(ptx))} if sass or ptx else None


def plugin_nvcc_command(
    nvcc: str, include: Path, output: Path, arch: list[str], csrc: Path = CSRC
) -> list[str]:
    """The nvcc call that compiles and links the plugin (edgedet.cuda_build.nvcc_command; pure).

    Hidden visibility leaves only getCreators/setLoggerFinder exported; --no-undefined turns a
    missing symbol into a build error instead of a dlopen failure on the device.
    """
    return nvcc_command(
        nvcc,
        [csrc / s for s in SOURCES],
        output,
        arch,
        [include, csrc],
        host_flags=("-fvisibility=hidden", "-Wno-deprecated-declarations"),
        linker_flags=("--no-undefined",),
    )


def nvcc_version(nvcc: str) -> str | None:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release [\d.]+, V([\d.]+)", out)
    return m.group(1) if m else None


def default_output(version: TRTVersion) -> Path:
    """``<cache>/plugins/<major.minor>/libedgedet_nms_plugin.so`` (a search location of
    edgedet.trt.plugins)."""
    from edgedet.trt.plugins import default_plugin_dirs

    return default_plugin_dirs(version)[0] / opdef.PLUGIN_LIBRARY


# ------------------------------------------------------------------ build


def build_plugin(
    tensorrt_include: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    arch: str | None = None,
    cuda_home: str | os.PathLike | None = None,
    say: Callable[[str], None] | None = None,
) -> PluginBuild:
    """Compile the plugin into ``output`` (default: the versioned cache folder) plus
    ``output.json``."""
    say = say or (lambda msg: None)
    flags = arch_flags(arch)
    missing = [s for s in SOURCES if not (CSRC / s).is_file()]
    if missing:
        raise EdgeDetError(
            f"plugin sources missing from this edgedet installation: {', '.join(missing)} (in"
            f" {CSRC}); reinstall edgedet from a complete source tree"
        )
    headers = find_headers(tensorrt_include)
    nvcc = nvcc_for(cuda_home)
    output = check_writable(Path(output) if output else default_output(headers.version))
    notes = _version_notes(headers.version)
    say(
        f"TensorRT {headers.version} headers in {headers.include}; nvcc {nvcc_version(nvcc) or '?'}"
        f" ({' '.join(flags) or 'default architecture: no GPU visible'})"
    )
    t0 = time.perf_counter()
    with atomic_path(output, suffix=".so") as tmp:
        cmd = plugin_nvcc_command(nvcc, headers.include, tmp, flags)
        run_nvcc(cmd, output)
    manifest = _manifest(output, headers, nvcc, flags, round(time.perf_counter() - t0, 1))
    write_text_atomic(manifest_path(output), json.dumps(manifest, indent=2) + "\n")
    return PluginBuild(output, manifest, cmd, notes)


def manifest_path(library: str | os.PathLike) -> Path:
    return Path(f"{library}.json")


def _manifest(
    output: Path, headers: TensorRTHeaders, nvcc: str, flags: list[str], seconds: float
) -> dict:
    return {
        "schema": MANIFEST_SCHEMA,
        "file": output.name,
        "sha256": sha256_file(output),
        "creators": [
            {
                "name": opdef.PLUGIN_NAME,
                "version": opdef.PLUGIN_VERSION,
                "namespace": opdef.PLUGIN_NAMESPACE,
            }
        ],
        "tensorrt": {"version": str(headers.version), "include": str(headers.include)},
        "nvcc": {"path": nvcc, "version": nvcc_version(nvcc)},
        "arch": flags,
        "architectures": architectures(
            flags, _gpu_capabilities() if "-arch=native" in flags else None
        ),
        "sources": {s: sha256_file(CSRC / s) for s in SOURCES},
        "seconds": seconds,
    }


def _gpu_capabilities() -> list[str]:
    """Compute capabilities of this machine's GPUs (what -arch=native builds for)."""
    from edgedet.doctor import gpu_info

    return sorted({g["compute_capability"] for g in gpu_info() if g.get("compute_capability")})


def _version_notes(version: TRTVersion) -> list[str]:
    """A TensorRT Python module of another major.minor here would not load this plugin."""
    from edgedet.doctor import tensorrt_info

    found = tensorrt_info()
    if not found["version"]:
        return []
    try:
        py = TRTVersion.parse(found["version"])
    except InputError:
        return []
    if (py.major, py.minor) != (version.major, version.minor):
        return [
            f"the headers are TensorRT {version} but Python's {found['module']} is {py}: the plugin"
            f" only loads into TensorRT {version.major}.{version.minor}; point --tensorrt-include"
            f" at headers of {py.major}.{py.minor}"
        ]
    return []


def plugin_status() -> dict:
    """For `edgedet doctor`: TensorRT headers found here, and the built library in the cache, if
    any. Never raises."""
    try:
        headers = find_headers()
        found = {"headers": str(headers.include), "tensorrt": str(headers.version)}
        library = default_output(headers.version)
    except EdgeDetError as exc:
        found = {"headers": None, "tensorrt": None, "error": str(exc).split(";")[0]}
        from edgedet.trt.plugins import cache_dir

        built = sorted((cache_dir() / "plugins").glob(f"*/{opdef.PLUGIN_LIBRARY}"))
        library = built[-1] if built else None
    found["library"] = str(library) if library is not None and library.is_file() else None
    return found
