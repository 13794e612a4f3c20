"""Checks against the real TensorRT Python bindings installed on this machine (lean 11.4 here).

Only class-level attributes and GPU-free calls are used: without a CUDA driver a lean
``Runtime`` instance crashes on first attribute access, so no Runtime is created here.
"""

from __future__ import annotations

import importlib

import pytest

from edgedet.trt.api import BUILDER, RUNTIME, RUNTIME_OPTIONAL
from edgedet.trt.loader import TRT_MODULES, LogBook, import_tensorrt, make_logger


def _real_trt():
    for name in TRT_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip(
        "no TensorRT Python module (tensorrt, tensorrt_lean, tensorrt_lean_bindings) is installed"
    )


def _resolve(module, dotted: str):
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_runtime_attribute_exists_on_the_installed_bindings():
    trt = _real_trt()
    missing = []
    for name in RUNTIME:
        try:
            _resolve(trt, name)
        except AttributeError:
            missing.append(name)
    assert not missing, f"TensorRT {trt.__version__} ({trt.__name__}) lacks {missing}"


def test_every_builder_attribute_exists_on_full_tensorrt():
    trt = _real_trt()
    if not hasattr(trt, "Builder"):
        pytest.skip(
            f"{trt.__name__} {trt.__version__} is the lean runtime: no Builder to check BUILDER"
            " against"
        )
    missing = [name for name in BUILDER if not _has(trt, name)]
    assert not missing, f"TensorRT {trt.__version__} lacks {missing}"


def test_one_list_per_tier_in_one_module():
    """The runtime backend and the builder keep no lists of their own (edgedet/trt/api.py is the
    one)."""
    import edgedet.backends.tensorrt as backend
    import edgedet.onnx.engine.build as build

    assert not [n for n in vars(backend) if "TRT_API" in n] and not [
        n for n in vars(build) if "TRT_API" in n
    ]
    assert not set(RUNTIME) & set(RUNTIME_OPTIONAL) and len(set(BUILDER)) == len(BUILDER)


def test_engine_inspector_is_optional_on_lean():
    trt = _real_trt()
    if hasattr(trt, "Builder"):
        assert all(_has(trt, n) for n in RUNTIME_OPTIONAL)
    else:  # the lean bindings leave IEngineInspector unbound; edgedet inspect degrades to I/O only
        assert not hasattr(trt, "EngineInspector")


def _has(module, dotted):
    try:
        _resolve(module, dotted)
        return True
    except AttributeError:
        return False


def test_import_reports_flavour_and_version():
    trt_mod = _real_trt()
    trt = import_tensorrt()
    assert str(trt.version).startswith(trt_mod.__version__.split(".")[0])
    assert trt.flavour == ("full" if hasattr(trt_mod, "Builder") else "lean")


def test_logger_subclass_collects_messages():
    _real_trt()  # skips with the reason when no TensorRT bindings are installed
    trt = import_tensorrt()
    book = LogBook()
    logger = make_logger(trt, book)
    assert isinstance(logger, trt.module.ILogger)
    logger.log(trt.module.ILogger.Severity.ERROR, "Error Code 1: boom")
    logger.log(trt.module.ILogger.Severity.INFO, "fine")
    assert book.errors() == ["Error Code 1: boom"] and book.last_error() == "Error Code 1: boom"


def test_progress_monitor_subclass_on_real_base():
    from edgedet.onnx.engine.progress import ProgressLog, make_progress_monitor

    trt = _real_trt()
    said = []
    log = ProgressLog(said.append)
    monitor = make_progress_monitor(trt, log)
    assert isinstance(monitor, trt.IProgressMonitor)
    monitor.phase_start("Building engine", None, 3)
    monitor.phase_start("Tactic selection", "Building engine", 10)
    assert monitor.step_complete("Tactic selection", 1) is True
    log.cancel()
    assert monitor.step_complete("Tactic selection", 2) is False
    monitor.phase_finish("Tactic selection")
    assert said[:2] == ["Building engine (3 steps)", "  Tactic selection (10 steps)"]


def test_builder_flag_names_for_11x_exist_and_weak_typing_is_gone():
    """The lean 11.x bindings carry BuilderFlag/HardwareCompatibilityLevel: the names select_flags
    emits for 11.x must exist there, and the weak-typing flags must not (removed in 11.0)."""
    from edgedet.onnx.engine.flags import BuildOptions, select_flags
    from edgedet.trt.version import TRTVersion

    trt = _real_trt()
    version = TRTVersion.parse(trt.__version__)
    if version.major < 11:
        pytest.skip(f"installed TensorRT is {version}; this check is about 11.x")
    plan = select_flags(
        version,
        BuildOptions(
            version_compatible=True, exclude_lean_runtime=True, hardware_compatibility="same_cc"
        ),
    )
    for name in plan.builder_flags:
        assert hasattr(trt.BuilderFlag, name), name
    assert hasattr(trt.HardwareCompatibilityLevel, plan.hardware_level)
    assert hasattr(trt.BuilderFlag, "GPU_FALLBACK") and hasattr(trt.DeviceType, "DLA")
    assert not hasattr(trt.BuilderFlag, "FP16") and not hasattr(trt.BuilderFlag, "INT8")
    assert hasattr(trt.MemoryPoolType, "WORKSPACE") and hasattr(trt.ProfilingVerbosity, "DETAILED")


def test_runtime_modules_import_without_tensorrt_cuda_or_torch():
    """`import edgedet` and the TensorRT backend module import nothing heavy until an engine is
    opened."""
    import subprocess
    import sys

    code = (
        "import sys\nfor m in ('tensorrt', 'tensorrt_lean', 'tensorrt_lean_bindings', 'cuda',"
        " 'torch', 'onnx'):\n    sys.modules[m] = None  # any import of these now fails\nimport"
        " edgedet, edgedet.backends, edgedet.backends.tensorrt, edgedet.trt.inspect,"
        " edgedet.trt.compat\nimport edgedet.cli.build, edgedet.cli.inspect, edgedet.doctor\nfrom"
        " edgedet.trt.loader import import_tensorrt\nfrom edgedet.errors import"
        " DependencyError\ntry:\n    import_tensorrt()\nexcept DependencyError as e:\n   "
        " print('missing:', str(e)[:40])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("missing: Running TensorRT engines needs TensorRT")
