"""What this machine has and what edgedet can do on it. Imports nothing heavy (no torch)."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import platform
import shutil
import subprocess

from edgedet.errors import first_line

# one install text for doctor, build and the backend
from edgedet.trt.loader import (
    HOWTO as TRT_INSTALL,
)

TRT_HOWTO = "TensorRT is not importable. Get it: " + TRT_INSTALL


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def gpu_info() -> list[dict]:
    """GPUs from nvidia-smi (name, compute capability, driver); empty when there is none."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [
                smi,
                "--query-gpu=name,compute_cap,driver_version,memory.total",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            gpus.append(
                {
                    "name": parts[0],
                    "compute_capability": parts[1],
                    "driver": parts[2],
                    "memory": parts[3],
                }
            )
    return gpus


def tensorrt_info() -> dict:
    """Which TensorRT flavour imports here (full or lean) and its version; never raises."""
    for module in ("tensorrt", "tensorrt_lean", "tensorrt_lean_bindings"):
        if importlib.util.find_spec(module) is None:
            continue
        try:
            trt = importlib.import_module(module)
            return {
                "module": module,
                "version": getattr(trt, "__version__", "?"),
                "builder": hasattr(trt, "Builder"),
                "error": None,
            }
        except Exception as exc:  # placeholder wheels and missing libnvinfer fail at import
            return {
                "module": module,
                "version": None,
                "builder": False,
                "error": first_line(exc, 200),
            }
    return {"module": None, "version": None, "builder": False, "error": "not installed"}


def onnxruntime_info() -> dict:
    if importlib.util.find_spec("onnxruntime") is None:
        return {"version": None, "providers": []}
    import onnxruntime as ort

    return {"version": ort.__version__, "providers": ort.get_available_providers()}


def report() -> dict:
    from edgedet import __version__

    ort = onnxruntime_info()
    trt = tensorrt_info()
    gpus = gpu_info()
    from edgedet.trt.plugin_build import plugin_status

    plugin = plugin_status()
    packages = {
        p: _version(p)
        for p in (
            "numpy",
            "opencv-python-headless",
            "pillow",
            "click",
            "onnx",
            "onnxslim",
            "torch",
            "torchvision",
            "cuda-python",
            "faster-coco-eval",
        )
    }
    can = {
        "export (torch -> ONNX)": bool(packages["torch"] and packages["onnx"]),
        "run ONNX on CPU": "CPUExecutionProvider" in ort["providers"],
        "run ONNX on CUDA": "CUDAExecutionProvider" in ort["providers"] and bool(gpus),
        "build TensorRT engines": bool(trt["builder"] and gpus and packages["onnx"]),
        "run TensorRT engines": bool(trt["version"] and gpus and packages["cuda-python"]),
        "compile CUDA kernels (nvcc)": shutil.which("nvcc") is not None,
        "build the EdgeDetNMS TensorRT plugin (edgedet plugin build)": bool(
            shutil.which("nvcc") and plugin["headers"]
        ),
        "evaluate mAP": bool(packages["faster-coco-eval"]),
    }
    return {
        "edgedet": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "onnxruntime": ort,
        "tensorrt": trt,
        "gpus": gpus,
        "nvcc": shutil.which("nvcc"),
        "nms_plugin": plugin,
        "can": can,
    }


def advice(r: dict) -> list[str]:
    """Concrete next steps for what is missing."""
    tips = []
    if not r["can"]["export (torch -> ONNX)"]:
        tips.append("to export models: pip install 'edgedet[export]'")
    if not r["packages"]["onnx"]:
        tips.append(
            "for attach-nms, quantize, check-qdq and TensorRT engine builds (on a Jetson too): "
            "pip install 'edgedet[ort,build]' (onnx, onnxslim, ONNX Runtime; no torch)"
        )
    if not r["onnxruntime"]["version"]:
        tips.append("to run ONNX models: pip install 'edgedet[ort]' (CPU) or 'edgedet[gpu]' (CUDA)")
    if not r["gpus"]:
        tips.append(
            "no NVIDIA GPU visible (nvidia-smi): TensorRT and CUDA paths are unavailable here; "
            "ONNX Runtime on CPU works"
        )
    if r["tensorrt"]["version"] is None:
        tips.append(
            TRT_HOWTO
            + (
                f" (import error: {r['tensorrt']['error']})"
                if r["tensorrt"]["error"] not in (None, "not installed")
                else ""
            )
        )
    elif not r["tensorrt"]["builder"]:
        tips.append(
            f"this is TensorRT's lean runtime ({r['tensorrt']['module']}): it runs"
            " version-compatible engines (built with `edgedet build --version-compatible` where"
            " full TensorRT exists) but cannot build; to build here, get full TensorRT: "
            + TRT_INSTALL
        )
    if r["gpus"] and not r["packages"]["cuda-python"]:
        tips.append(
            "the TensorRT backend allocates buffers with cuda-python: pip install cuda-python "
            "(12.x for CUDA 12 / JetPack 6, 13.x for CUDA 13)"
        )
    if r["tensorrt"]["version"] and not r["gpus"]:
        tips.append(
            "TensorRT is installed but no GPU is visible: engines cannot be built or run here; "
            "`edgedet inspect model.engine` still says what an engine needs"
        )
    plugin = r.get("nms_plugin") or {}
    if r["tensorrt"]["builder"] and not plugin.get("library"):
        tips.append(
            "the EdgeDetNMS plugin is not built here: `edgedet plugin build`"
            + (
                ""
                if plugin.get("headers")
                else " (needs TensorRT's C++ headers: libnvinfer-dev, or TENSORRT_ROOT)"
            )
        )
    return tips
