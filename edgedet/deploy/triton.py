"""Triton Inference Server: a model repository (``REPO/<name>/config.pbtxt``,
``1/model.onnx|plan``).

The config is written in protobuf text format for Triton's ``inference.ModelConfig``
(``model_config.proto``). Rules that shape it (Triton's model configuration docs):

* ``max_batch_size > 0`` means the first dimension of every input and output is the batch and is
  left out of ``dims``; Triton's ONNX Runtime and TensorRT backends then need that dimension to be
  dynamic in the model. So a dynamic-batch model gets ``max_batch_size`` (an engine: its profile
  maximum) and ``dynamic_batching``; a fixed-batch model gets ``max_batch_size: 0``, full dims and
  no dynamic batching (Triton cannot batch requests for it).
* ``platform``: ``onnxruntime_onnx`` or ``tensorrt_plan``; the file is ``1/model.onnx`` or
  ``1/model.plan`` (the backends' default file names).
* A version-compatible plan needs ``--backend-config=tensorrt,version-compatible=true`` on the
  server, which lets the runtime run the plan's embedded host code (tensorrt_backend
  ``src/loader.cc``: ``setEngineHostCodeAllowed``).

Pure functions of the manifest; :func:`write_triton` writes the repository atomically.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgedet import contract
from edgedet.deploy import (
    PLUGIN_REBUILD_NOTE,
    Artifact,
    check_detector_input,
    copy_artifact,
    open_artifact,
    output_names,
    plugins_to_load,
)
from edgedet.deploy.deepstream import profile_max_batch
from edgedet.errors import InputError, require
from edgedet.fileio import write_text_atomic
from edgedet.manifest import Manifest

DATA_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "uint8": "TYPE_UINT8",
    "int8": "TYPE_INT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DEFAULT_MAX_BATCH = 8  # dynamic-batch ONNX files have no profile: the batch Triton may form
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def max_batch_size(art: Artifact, requested: int | None = None) -> int:
    """0 for a fixed-batch model; an engine's profile maximum; ``requested`` or 8 for dynamic
    ONNX."""
    if art.manifest.input.batch > 0:
        return 0
    if art.is_engine:
        top = profile_max_batch(art.manifest)
        if requested is not None and requested > top:
            raise InputError(f"--max-batch {requested} exceeds the engine's profile maximum {top}")
        return requested or top
    return requested or DEFAULT_MAX_BATCH


def _dims(shape, batched: bool) -> str:
    dims = list(shape[1:]) if batched else list(shape)
    if any(d < 0 for d in (dims if batched else dims[1:])):
        raise InputError(
            f"shape {list(shape)} has a dynamic dimension besides the batch; Triton configs here "
            "need fixed shapes - re-export with fixed sizes"
        )
    return "[ " + ", ".join(str(int(d)) for d in dims) + " ]"


def _dtype(name: str, dtype: str) -> str:
    if dtype not in DATA_TYPES:
        raise InputError(f"tensor {name!r} has dtype {dtype}, which has no Triton data type here")
    return DATA_TYPES[dtype]


def _tensor(name: str, dtype: str, shape, batched: bool, extra: str = "") -> str:
    return (
        f'  {{\n    name: "{name}"\n    data_type: {_dtype(name, dtype)}\n    dims:'
        f" {_dims(shape, batched)}\n{extra}  }}"
    )


def io_entries(
    manifest: Manifest, batched: bool, labels_file: str | None
) -> tuple[list[str], list[str]]:
    """``input [...]`` and ``output [...]`` entries from the manifest (outputs in graph order)."""
    output_names(manifest)  # refuses manifests without an output list
    inputs = [_tensor(manifest.input.name, manifest.input.dtype, manifest.input.shape, batched)]
    outputs = []
    for o in manifest.outputs:
        extra = (
            f'    label_filename: "{labels_file}"\n'
            if labels_file and o.name == contract.CLASS_PROBS
            else ""
        )
        outputs.append(_tensor(o.name, o.dtype, o.shape, batched, extra))
    return inputs, outputs


def model_config(
    art: Artifact,
    name: str,
    max_batch: int | None = None,
    instances: int = 1,
    kind: str = "gpu",
    queue_delay_us: int = 100,
) -> str:
    """``config.pbtxt`` text for Triton's ModelConfig."""
    m = art.manifest
    check_detector_input(m, "Triton")
    if not NAME_RE.match(name):
        raise InputError(
            f"model name {name!r} must be letters, digits, '_', '-' or '.' (it is a folder name)"
        )
    if instances < 1:
        raise InputError(f"--instances must be >= 1, got {instances}")
    if kind not in KINDS:
        raise InputError(f"--kind {kind} is not one of {', '.join(KINDS)}")
    if art.is_engine:
        if kind == "cpu":
            raise InputError("a TensorRT plan runs on a GPU only; use --kind gpu")
    elif m.nms_implementation == "efficient":
        raise InputError(
            f"{art.path.name} ends in NVIDIA's EfficientNMS_TRT, which only TensorRT runs, not"
            " Triton's ONNX Runtime backend: build an engine (`edgedet build`) and deploy that, or"
            " re-export with --nms edgedet or graph"
        )
    mbs = max_batch_size(art, max_batch)
    batched = mbs > 0
    inputs, outputs = io_entries(m, batched, "labels.txt")
    lines = [
        (
            f"# Triton model config for {m.family}/{m.model}, generated by edgedet from"
            f" {art.path.name}.json"
        ),
        f'name: "{name}"',
        f'platform: "{"tensorrt_plan" if art.is_engine else "onnxruntime_onnx"}"',
        f"max_batch_size: {mbs}",
        "input [\n" + ",\n".join(inputs) + "\n]",
        "output [\n" + ",\n".join(outputs) + "\n]",
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {KINDS[kind]}\n  }}\n]",
    ]
    if batched:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}")
    else:
        lines.append(
            "# fixed batch: Triton cannot batch requests for this model (export with"
            " --dynamic-batch)"
        )
    return "\n".join(lines) + "\n"


def server_notes(art: Artifact, repo: Path) -> str:
    """How to start tritonserver on this repository (the flags this model needs)."""
    flags = [f"--model-repository={repo}"]
    section = art.manifest.tensorrt
    if art.is_engine and section and section.version_compatible:
        flags.append("--backend-config=tensorrt,version-compatible=true")
    libs = plugins_to_load(art.manifest) if art.is_engine else []
    # the TensorRT backend dlopens each before loading plans (tensorrt_backend README, "plugins")
    if libs:
        flags.append(f'--backend-config=tensorrt,plugins="{";".join(libs)}"')
    version = section.version if section else None
    lines = ["tritonserver " + " ".join(flags)]
    if libs:
        lines.append(f"# or LD_PRELOAD={':'.join(libs)} tritonserver ...; {PLUGIN_REBUILD_NOTE}")
    if version:
        lines.append(
            f"# the plan was built by TensorRT {version}: the server's TensorRT must be that"
            " release"
            + (" or later (version-compatible plan)" if section.version_compatible else "")
        )
    return "\n".join(lines) + "\n"


def parse_config(text: str):
    """Parse ``config.pbtxt`` text with Triton's own ``inference.ModelConfig``
    (``model_config.proto`` as shipped in ``tritonclient``); raises InputError with protobuf's
    message when it does not parse.

    The generated ``model_config_pb2`` module is loaded by file path: ``tritonclient.grpc``'s
    package import needs grpcio, which parsing does not.
    """
    import importlib.util

    tc = require("tritonclient", "serve", "checking a Triton model config")
    from google.protobuf import text_format

    path = Path(tc.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("edgedet_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return text_format.Parse(text, module.ModelConfig())
    except text_format.ParseError as exc:
        raise InputError(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from None


def write_triton(
    model: str | os.PathLike,
    repo: str | os.PathLike,
    name: str | None = None,
    max_batch: int | None = None,
    instances: int = 1,
    kind: str = "gpu",
    queue_delay_us: int = 100,
) -> list[Path]:
    """Write REPO/<name>/{config.pbtxt, labels.txt, 1/model.onnx|plan (+ manifest)}; returns the
    paths."""
    art = open_artifact(model)
    name = name or art.path.stem.replace(" ", "_")
    text = model_config(art, name, max_batch, instances, kind, queue_delay_us)  # validates first
    folder = Path(repo) / name
    target = folder / "1" / ("model.plan" if art.is_engine else "model.onnx")
    copied = copy_artifact(art, target)
    labels = "".join(f"{n}\n" for n in art.manifest.class_names)
    files = {folder / "config.pbtxt": text, folder / "labels.txt": labels}
    for path, content in files.items():
        write_text_atomic(path, content)
    return [copied, *files]
