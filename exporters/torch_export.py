"""torch.nn.Module -> onnx.ModelProto, fixed or dynamic batch.

Two exporters: TorchScript-based (``torchscript``; fast, emits the requested opset
exactly: 1.5 s for SSDlite at opset 17) and torch.export-based (``dynamo``; torch's
future path, 11.5 s for SSDlite and it could not down-convert to opset 17, staying at
18 — measured with torch 2.14.1 on the 2-core dev machine). ``auto`` takes TorchScript
while torch still ships it and falls back to dynamo.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch

from edgedet.errors import ExportError

EXPORTERS = ("auto", "torchscript", "dynamo")


def export_module(
    module: torch.nn.Module,
    example: torch.Tensor,
    output_names: tuple[str, ...],
    opset: int = 17,
    dynamic_batch: bool = False,
    exporter: str = "auto",
):
    """Trace ``module(example)`` into an ONNX ModelProto with input ``images``."""
    import onnx

    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter '{exporter}'; choose one of {', '.join(EXPORTERS)}")
    module = module.eval()
    if exporter in ("auto", "torchscript"):
        try:
            return onnx.load_from_string(
                _torchscript(module, example, output_names, opset, dynamic_batch)
            )
        except Exception as exc:
            if exporter == "torchscript" or not _torchscript_missing(exc):
                raise _export_error(exc) from None
    try:
        return _dynamo(module, example, output_names, opset, dynamic_batch)
    except Exception as exc:
        raise _export_error(exc) from None


def _torchscript(module, example, output_names, opset, dynamic_batch) -> bytes:
    buf = io.BytesIO()
    axes = {name: {0: "batch"} for name in ("images", *output_names)} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=list(output_names),
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return buf.getvalue()


def _dynamo(module, example, output_names, opset, dynamic_batch):
    shapes = {"images": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic_batch else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["images"],
            output_names=list(output_names),
            dynamic_shapes=shapes,
            verbose=False,
        )
    return program.model_proto


def _torchscript_missing(exc: Exception) -> bool:
    return (
        isinstance(exc, (AttributeError, NotImplementedError, ImportError))
        or "removed" in str(exc).lower()
    )


def _export_error(exc: Exception) -> ExportError:
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else type(exc).__name__
    return ExportError(
        f"torch could not export the model to ONNX: {first}. Try --exporter dynamo/torchscript "
        "or another --opset; unsupported modules are named in the message"
    )
