"""`edgedet inspect`: what an engine needs, whether this machine can run it, and what is inside.

Works without TensorRT or a GPU for the first two (manifest + compatibility rules); opening
the engine for its I/O, profiles and per-layer information needs both. Layer information
comes from ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)``, which
full TensorRT binds and the lean runtime's Python bindings do not (so lean shows I/O only).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from edgedet.errors import DependencyError, EdgeDetError
from edgedet.manifest import manifest_path, read_manifest
from edgedet.trt import compat, plugins
from edgedet.trt.engine_file import read_plan


def inspect_engine(path: str | os.PathLike, layers: bool = False, plugin_paths=()) -> dict:
    """A report on engine ``path``; ModelError/ManifestError only for a broken file or manifest."""
    path = Path(path)
    plan = read_plan(path)
    manifest = read_manifest(path) if manifest_path(path).exists() else None
    section = manifest.tensorrt if manifest else None
    report = {
        "engine": str(path),
        "bytes": len(plan),
        "manifest": _manifest_summary(manifest),
        "built": section.to_dict() if section else {},
    }
    machine, reasons = _machine()
    report["machine"], report["notes"] = machine, []
    if section and "trt_version" in machine:
        needs = compat.EngineNeeds.from_manifest(section)
        here = compat.Machine(
            machine["trt_version"],
            machine["flavour"],
            machine.get("cc"),
            machine.get("gpu"),
            machine.get("gpu_error"),
        )
        resolved = [
            plugins.resolve(r, path.parent, plugin_paths, machine["trt_version"])
            for r in needs.plugins
        ]
        problems = [p for r in resolved for p in plugins.problems(r)]
        problems += [
            p
            for r in resolved
            if r.path is not None or r.record.serialized
            if (
                p := plugins.arch_problem(
                    r.path, here.compute_capability, r.record.architectures, r.record.file
                )
            )
        ]
        reasons = compat.check(needs, here, problems)
        report["plugins"] = [
            {
                "file": r.record.file,
                "found": str(r.path) if r.path else None,
                "sha256_matches": r.hash_matches,
                "embedded": r.record.serialized,
            }
            for r in resolved
        ]
    elif not section:
        report["notes"].append(
            "no manifest 'tensorrt' section: what the engine needs is unknown until TensorRT"
            " loads it"
        )
    if not reasons:
        try:
            report.update(_open(path, layers, plugin_paths))
        except EdgeDetError as exc:
            reasons.append(str(exc))
    report["can_load_here"], report["reasons"] = not reasons, reasons
    machine.pop("trt_version", None)
    machine.pop("cc", None)
    return report


def _manifest_summary(manifest) -> dict | None:
    if manifest is None:
        return None
    return {
        "model": f"{manifest.family}/{manifest.model}",
        "input": list(manifest.input.shape),
        "input_dtype": manifest.input.dtype,
        "outputs": [o.name for o in manifest.outputs],
        "classes": manifest.num_classes,
        "precision": manifest.precision,
        "source": manifest.source,
    }


def _machine() -> tuple[dict, list[str]]:
    """This machine's TensorRT and GPU, and what stops it from running any engine."""
    from edgedet.backends import tensorrt as backend  # the one place that binds TensorRT and CUDA

    info: dict = {}
    problems: list[str] = []
    try:
        trt = backend.import_tensorrt()
        info.update(
            tensorrt=str(trt.version), module=trt.name, flavour=trt.flavour, trt_version=trt.version
        )
    except DependencyError as exc:
        problems.append(str(exc))
    try:
        cuda = backend.Cuda()
        count, why = cuda.device_count()
        if count:
            d = cuda.device_info(0)
            info.update(
                gpu=d.name,
                compute_capability="{}.{}".format(*d.compute_capability),
                cc=d.compute_capability,
            )
        else:
            info["gpu_error"] = why
            problems.append(f"no usable NVIDIA GPU ({why})")
    except EdgeDetError as exc:
        info["gpu_error"] = str(exc)
        problems.append(str(exc))
    return info, problems


def _open(path: Path, layers: bool, plugin_paths) -> dict:
    """I/O, profiles, memory and (full TensorRT) per-layer information of the deserialised
    engine."""
    from edgedet.backends.tensorrt import TensorRTBackend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backend = TensorRTBackend(path, plugins=plugin_paths)
    try:
        engine, t = backend.engine, backend.trt.module
        out = {
            "io": [
                {
                    "name": x.name,
                    "input": x.is_input,
                    "dtype": x.dtype.name,
                    "shape": list(x.shape),
                    "profile": [list(s) for s in x.profile] if x.profile else None,
                }
                for x in backend.tensors
            ],
            "num_layers": engine.num_layers,
            "device_memory_bytes": int(engine.device_memory_size_v2),
            "batch_range": [backend.min_batch, backend.max_batch],
        }
        if layers:
            out["layers"] = _layer_info(t, engine)
        return out
    finally:
        backend.close()


def _layer_info(t, engine):
    """Engine inspector JSON (needs full TensorRT and a DETAILED profiling verbosity build)."""
    if not hasattr(t, "EngineInspector"):
        return (
            "not available: this TensorRT Python module (lean runtime) does not bind"
            " IEngineInspector"
        )
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(t.LayerInformationFormat.JSON)
    try:
        return json.loads(text)
    except ValueError:
        return text
