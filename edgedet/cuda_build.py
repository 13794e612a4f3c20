"""Compile edgedet's CUDA sources (edgedet/csrc/*.cu, C ABI, no TensorRT headers) with nvcc.

The kernels library is what the device machine's tests and benchmarks load with ctypes; the
TensorRT plugin links the same sources. Without a GPU, nvcc's default architecture is used (a
compile check); with one, ``-arch=native``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgedet.errors import DependencyError, EdgeDetError

CSRC = Path(__file__).parent / "csrc"
KERNEL_SOURCES = ("letterbox.cu", "nms_kernels.cu")
# docs/nms.md: no fused multiply-add, so IoU and decode round exactly as the spec writes them
SPEC_FLAGS = ("-fmad=false",)


def nvcc_path() -> str:
    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc") if os.environ.get("CUDA_HOME") else None)
    if not nvcc or not os.path.exists(nvcc):
        raise DependencyError("nvcc (the CUDA compiler) was not found on PATH or under $CUDA_HOME/bin; install the "
                              "CUDA toolkit (JetPack ships it in /usr/local/cuda/bin)")
    return nvcc


def default_arch() -> list[str]:
    """-arch=native where a GPU is visible (builds for it), else nvcc's default (compile check only)."""
    from edgedet.doctor import gpu_info

    return ["-arch=native"] if gpu_info() else []


def compile_library(output: str | os.PathLike, sources=None, arch: list[str] | None = None,
                    extra: list[str] | None = None) -> Path:
    """nvcc -shared the given sources into ``output``; EdgeDetError with nvcc's message on failure."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    srcs = [str(CSRC / s) if not os.path.isabs(str(s)) else str(s) for s in (sources or KERNEL_SOURCES)]
    cmd = [nvcc_path(), "-O3", "-std=c++17", *SPEC_FLAGS, f"-I{CSRC}", "-Xcompiler", "-fPIC", "-shared",
           *(default_arch() if arch is None else arch),
           *(extra or []), "-o", str(output), *srcs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise EdgeDetError(f"nvcc failed building {output.name}:\n{tail}")
    return output
