"""Exceptions a user can cause and fix.

Every message names the offending input and says what to do. The CLI turns an
:class:`EdgeDetError` into one line on stderr and a non-zero exit; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeDetError(Exception):
    """Base class: a problem with the user's input, files or environment."""

    exit_code = 2


class InputError(EdgeDetError):
    """Bad user input: an unreadable image, a wrong shape, NaN values, a bad option."""


class ModelError(EdgeDetError):
    """A model or engine file that is missing, corrupt, truncated or of the wrong kind."""


class ManifestError(ModelError):
    """A sidecar manifest that is missing, unreadable or of an unknown schema."""


class WriteError(EdgeDetError):
    """An output that cannot be written: full disk, read-only filesystem, no permission."""


class DependencyError(EdgeDetError):
    """An optional package (onnxruntime, tensorrt, torch, ...) is not installed."""

    exit_code = 3


class CompatibilityError(EdgeDetError):
    """An artifact built for another TensorRT version, GPU or plugin set."""


class ExportError(EdgeDetError):
    """The exporter cannot take this model (unsupported module, op or option)."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise :class:`DependencyError` saying how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{purpose} needs the Python package '{module.split('.')[0]}', which is not installed "
            f"({exc}); install it with: pip install 'edgedet[{extra}]'"
        ) from None


def first_line(error: BaseException | str, limit: int | None = 200) -> str:
    """The first non-blank line of an exception's (or a log message's) text, stripped and cut to
    ``limit`` characters, for one-line error messages. An exception with no text
    (``str(KeyError())`` is '') gives its type name; an empty string gives ''."""
    line = next((part.strip() for part in str(error).splitlines() if part.strip()), "")
    if not line and isinstance(error, BaseException):
        line = type(error).__name__
    return line[:limit] if limit is not None else line


class ServeError(EdgeDetError):
    """The inference server could not start the model (edgedet serve)."""
