"""Import whichever TensorRT Python module this machine has, and a logger that keeps errors.

TensorRT ships its runtime under several import names: ``tensorrt`` (full: builder, parser,
runtime), ``tensorrt_lean`` (NVIDIA's lean runtime: deserialise and run version-compatible
plans only) and ``tensorrt_lean_bindings`` (the name the standalone
``tensorrt-lean-cu13-bindings`` wheel exposes; verified on this project's dev machine with
11.4.0.106). All share the 10.x/11.x runtime API, so edgedet treats them alike and only asks
"is there a Builder?".
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field

from edgedet.errors import DependencyError, first_line
from edgedet.trt.version import TRTVersion

TRT_MODULES = ("tensorrt", "tensorrt_lean", "tensorrt_lean_bindings")

HOWTO = (
    "on Jetson (JetPack 6.x ships TensorRT 10.3) `sudo apt install nvidia-tensorrt`, or the parts"
    " `python3-libnvinfer python3-libnvinfer-dev libnvinfer-dev libnvinfer-plugin-dev"
    " libnvonnxparsers-dev`; on a desktop `pip install tensorrt` (CUDA 13) or `pip install"
    " tensorrt-cu12` (CUDA 12), which fetch the libraries from NVIDIA's index"
    " https://pypi.nvidia.com, or NVIDIA's TensorRT tarball (`pip install python/tensorrt-*.whl`"
    " from it, its lib/ on LD_LIBRARY_PATH); to only run version-compatible engines, the lean"
    " runtime `pip install tensorrt-lean` (see `edgedet doctor` and docs/jetson.md)"
)


@dataclass
class TensorRT:
    """An imported TensorRT module and what it is."""

    module: object
    name: str
    version: TRTVersion
    flavour: str  # "full" (has Builder) or "lean" (runtime only)

    @property
    def has_builder(self) -> bool:
        return self.flavour == "full"


def import_tensorrt(need_builder: bool = False, modules: tuple[str, ...] = TRT_MODULES) -> TensorRT:
    """The first importable TensorRT module; DependencyError (with how to get one) otherwise.

    ``need_builder`` demands the full package (Builder + OnnxParser), which the lean
    runtime lacks.
    """
    errors = []
    for name in modules:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            mod = importlib.import_module(name)
        except Exception as exc:  # placeholder wheels and a missing libnvinfer fail at import time
            errors.append(f"{name}: {first_line(exc, 160)}")
            continue
        trt = TensorRT(
            mod,
            name,
            TRTVersion.parse(getattr(mod, "__version__", "0")),
            "full" if hasattr(mod, "Builder") else "lean",
        )
        if need_builder and not trt.has_builder:
            raise DependencyError(
                "building engines needs full TensorRT with its Builder and ONNX parser; this"
                f" machine only has the TensorRT {trt.version} lean runtime ({name}), which can run"
                f" engines but not build them. Get full TensorRT: {HOWTO}"
            )
        return trt
    found = f" (import failed: {'; '.join(errors)})" if errors else ""
    purpose = "Building TensorRT engines" if need_builder else "Running TensorRT engines"
    raise DependencyError(
        f"{purpose} needs TensorRT, which is not installed here{found}. Get it: {HOWTO}"
    )


@dataclass
class LogRecord:
    severity: int  # 0 internal error, 1 error, 2 warning, 3 info, 4 verbose (ILogger.Severity)
    message: str


@dataclass
class LogBook:
    """Messages a TensorRT logger received, so errors can be quoted in one-line exceptions."""

    records: list[LogRecord] = field(default_factory=list)

    def errors(self) -> list[str]:
        return [r.message for r in self.records if r.severity <= 1]

    def last_error(self, default: str = "no error was logged") -> str:
        errs = self.errors()
        return first_line(errs[-1], 400) if errs else default


def make_logger(trt: TensorRT, book: LogBook, echo=None, min_severity: int = 2):
    """A ``trt.ILogger`` subclass instance that stores messages in ``book``.

    The Python API documents custom loggers as subclasses of ``trt.ILogger`` that call
    ``trt.ILogger.__init__(self)`` and override ``log(severity, msg)`` (pyCoreDoc.h, ILoggerDoc).
    Messages at or above ``min_severity`` (2 = warning) also go to ``echo`` when given.
    """
    base = trt.module.ILogger

    class _Logger(base):
        def __init__(self):
            base.__init__(self)

        def log(self, severity, msg):  # called from TensorRT threads: must not raise
            try:
                level = int(severity)
                book.records.append(LogRecord(level, str(msg)))
                if echo is not None and level <= min_severity:
                    echo(f"TensorRT: {msg}")
            except Exception:  # noqa: BLE001 - an exception here would cross into C++
                pass

    return _Logger()
