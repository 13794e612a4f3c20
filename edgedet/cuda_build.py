"""nvcc for edgedet's CUDA sources: the one place an nvcc command line is written.

``nvcc_command`` builds every nvcc call edgedet and its tests/benchmarks make: the TensorRT plugin
(edgedet/trt/plugin_build.py, ``edgedet plugin build``), the kernels library that the device
machine's tests and benchmarks load with ctypes (``compile_library``) and the plugin test harness
(benchmarks/gpu/plugin_harness.py). Sources here are C ABI, no TensorRT headers. Without a GPU,
nvcc's default architecture is used (a compile check); with one, ``-arch=native``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgedet.errors import DependencyError, EdgeDetError

CSRC = Path(__file__).parent / "csrc"
KERNEL_SOURCES = ("nms_kernels.cu",)
CXX_STD = "c++17"
# docs/nms.md: no fused multiply-add, so IoU and decode round exactly as the spec writes them
SPEC_FLAGS = ("-fmad=false",)


def nvcc_path() -> str:
    nvcc = shutil.which("nvcc") or (
        os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
        if os.environ.get("CUDA_HOME")
        else None
    )
    if not nvcc or not os.path.exists(nvcc):
        raise DependencyError(
            "nvcc (the CUDA compiler) was not found on PATH or under $CUDA_HOME/bin; install the "
            "CUDA toolkit (JetPack ships it in /usr/local/cuda/bin)"
        )
    return nvcc


def default_arch() -> list[str]:
    """-arch=native where a GPU is visible (builds for it), else nvcc's default (compile check
    only)."""
    from edgedet.doctor import gpu_info

    return ["-arch=native"] if gpu_info() else []


def nvcc_command(
    nvcc: str,
    sources,
    output: str | os.PathLike,
    arch=(),
    include_dirs=(),
    *,
    shared: bool = True,
    host_flags=(),
    linker_flags=(),
    defines=(),
    extra=(),
    optimize: str = "-O3",
) -> list[str]:
    """The nvcc command line (pure: nothing is run or checked).

    Always C++17 and SPEC_FLAGS; ``shared``: a position-independent shared library, else an
    executable. ``arch``: -arch / -gencode flags ([]: nvcc's default architecture); ``host_flags``
    go to the host compiler, ``linker_flags`` to the linker, ``extra`` to nvcc as they are; sources
    come last.
    """
    host = ["-fPIC"] * shared + list(host_flags)
    return [
        nvcc,
        optimize,
        f"-std={CXX_STD}",
        *SPEC_FLAGS,
        *["-shared"] * shared,
        *arch,
        *(["-Xcompiler", ",".join(host)] if host else []),
        *(["-Xlinker", ",".join(linker_flags)] if linker_flags else []),
        *(f"-D{d}" for d in defines),
        *(f"-I{d}" for d in include_dirs),
        *extra,
        "-o",
        str(output),
        *map(str, sources),
    ]


def run_nvcc(cmd: list[str], output: str | os.PathLike) -> None:
    """Run an :func:`nvcc_command`; EdgeDetError with the tail of nvcc's message on one line when it
    fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(line.strip() for line in proc.stderr.strip().splitlines()[-6:])
        raise EdgeDetError(f"nvcc failed building {Path(output).name}: {tail}")


def compile_library(
    output: str | os.PathLike,
    sources=None,
    arch: list[str] | None = None,
    extra: list[str] | None = None,
) -> Path:
    """nvcc -shared the given sources (names in CSRC or absolute paths) into ``output``."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    srcs = [
        str(CSRC / s) if not os.path.isabs(str(s)) else str(s) for s in sources or KERNEL_SOURCES
    ]
    run_nvcc(
        nvcc_command(
            nvcc_path(),
            srcs,
            output,
            default_arch() if arch is None else arch,
            [CSRC],
            extra=extra or (),
        ),
        output,
    )
    return output
