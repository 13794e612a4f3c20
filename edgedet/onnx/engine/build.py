"""`edgedet build`: ONNX -> TensorRT plan file + manifest, strongly typed, on TensorRT 10.3-11.x.

Stages (each a small function; nothing touches the output until the final atomic writes):
  options -> ONNX + manifest -> profile shapes -> import TensorRT (full) -> flags for this
  version -> load plugins -> strip the NMS local function (< 10.7 with a plugin) -> network +
  ONNX parser (errors name node and operator) -> builder config (workspace, opt level,
  timing cache, progress monitor, profile, version/hardware compatibility, DLA) ->
  build_serialized_network -> plan file (plain, no header) + manifest + timing cache.

The TensorRT calls follow the Python API of 10.3 and 11.x (python/src at tags v10.3.0 and v11.0
of NVIDIA/TensorRT; docs cited beside each call); edgedet.trt.api.BUILDER lists them. None of them
has run in this project: no machine here has full TensorRT (docs/tensorrt.md).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgedet.errors import ExportError, InputError, ManifestError
from edgedet.fileio import check_output, sha256_file, write_bytes_atomic
from edgedet.manifest import Manifest, TensorRTSection, manifest_path, read_manifest, write_artifact
from edgedet.onnx.engine import flags as trt_flags
from edgedet.onnx.engine import strip
from edgedet.onnx.engine.engine_manifest import engine_manifest, manifest_from_onnx_io
from edgedet.onnx.engine.profiles import ProfileShape, optimization_profile
from edgedet.onnx.engine.progress import ProgressLog, make_progress_monitor
from edgedet.trt import plugins as trt_plugins
from edgedet.trt.loader import LogBook, TensorRT, import_tensorrt, make_logger


@dataclass
class BuildResult:
    path: Path
    manifest: Manifest
    seconds: float
    notes: list[str] = field(default_factory=list)


def build_engine(
    onnx_path: str | os.PathLike,
    output: str | os.PathLike,
    options: trt_flags.BuildOptions,
    say: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build ``onnx_path`` into the plan file ``output`` (+ ``output.json``) on this machine's
    GPU."""
    say = say or (lambda msg: None)
    t0 = time.perf_counter()
    trt_flags.validate(options)
    onnx_path, output = Path(onnx_path), check_output(output, [onnx_path])
    model, source = _load_source(onnx_path)
    from edgedet.onnx.tools import io_specs

    inputs, outputs = io_specs(model)
    _refuse_nvidia_plugins_in_version_compatible(model, options)
    profile, notes = optimization_profile(inputs, options.batch)
    trt = import_tensorrt(need_builder=True)
    plan_flags = trt_flags.select_flags(trt.version, options, dynamic=bool(profile))
    notes += plan_flags.notes
    gpu = _gpu_record(options)
    if not gpu:
        notes.append(
            "the building GPU is unknown (no cuda-python, no nvidia-smi): the manifest cannot"
            " record its compute capability, so other devices are not refused before TensorRT tries"
            " to load the engine"
        )
    book = LogBook()
    logger = make_logger(
        trt, book, echo=say if options.verbose else None, min_severity=3 if options.verbose else 2
    )
    records = _load_plugins(trt, options.plugins, options.version_compatible)
    notes += _check_plugin_architectures(records, options, gpu)
    notes += _nvidia_plugins(trt, logger, model)
    model, stripped, nms_notes = _prepare_nms(model, trt, bool(records))
    notes += nms_notes
    say(
        f"TensorRT {trt.version}: {plan_flags.precision}, profile"
        f" {[p.to_dict() for p in profile] or 'static'}"
    )
    # the parser owns the imported weights: it (and the network) must live until the build returns
    builder, network, parser = _parse(trt, logger, book, plan_flags, model, onnx_path, stripped)
    plugin_layers = _plugin_layer_count(trt.module, network)
    config, log, monitor = _configure(
        trt, builder, parser, plan_flags, options, profile, records, say
    )
    plan = _build(trt, builder, network, config, book, log)
    del monitor  # held until here: the monitor must outlive the build (IProgressMonitor docs)
    _save_timing_cache(config, options.timing_cache, say)
    section = _tensorrt_section(
        trt, plan_flags, options, gpu, profile, records, stripped, plugin_layers
    )
    seconds = round(time.perf_counter() - t0, 1)
    manifest = engine_manifest(
        source,
        onnx_path,
        sha256_file(onnx_path),
        bool(profile),
        section,
        {"seconds": seconds, "notes": notes},
    )
    _write(output, plan, manifest)
    return BuildResult(output, manifest, seconds, notes)


# ------------------------------------------------------------------ inputs (no TensorRT)


def _load_source(onnx_path: Path):
    """The ONNX model (external weights not loaded: TensorRT reads them itself) and its manifest."""
    from edgedet.onnx.tools import io_specs, load_onnx

    model = load_onnx(onnx_path, load_external=False)
    if manifest_path(onnx_path).exists():
        return model, read_manifest(onnx_path)
    warnings.warn(
        f"{onnx_path} has no manifest: class names will be generic (class0, ...); export with"
        " edgedet or use `edgedet attach-nms` to keep them",
        stacklevel=3,
    )
    try:
        return model, manifest_from_onnx_io(onnx_path, *io_specs(model))
    except ManifestError as exc:
        raise InputError(
            f"{onnx_path} does not follow the edgedet contract and has no manifest ({exc})"
        ) from None


def _gpu_record(options: trt_flags.BuildOptions) -> dict:
    """Name and compute capability of the building GPU (the engine is tied to it) for the
    manifest."""
    rec = _cuda_gpu() or _smi_gpu()
    if rec.get("integrated") and options.hardware_compatibility != "none":
        # hardware compatibility targets discrete Ampere+ GPUs; TensorRT does not support it on
        # JetPack (TensorRT Developer Guide, "Hardware Compatibility")
        raise InputError(
            "--hardware-compat is not supported on Jetson (integrated GPUs); build on each device"
            " instead"
        )
    return rec


def _cuda_gpu() -> dict:
    from edgedet.errors import EdgeDetError
    from edgedet.trt.cuda import Cuda

    try:
        cuda = Cuda()
        if cuda.device_count()[0]:
            d = cuda.device_info(0)
            return {
                "name": d.name,
                "compute_capability": "{}.{}".format(*d.compute_capability),
                "integrated": d.integrated,
            }
    except EdgeDetError:  # no cuda-python or no driver: nvidia-smi may still know
        pass
    return {}


def _smi_gpu() -> dict:
    from edgedet.doctor import gpu_info

    gpus = gpu_info()
    return (
        {"name": gpus[0]["name"], "compute_capability": gpus[0]["compute_capability"]}
        if gpus
        else {}
    )


def _load_plugins(
    trt: TensorRT, paths: list[str], version_compatible: bool
) -> list[trt_plugins.PluginRecord]:
    """Load each --plugin library (before parsing, so the parser finds its creators) and record
    it."""
    records = []
    for p in paths:
        path = Path(p)
        creators = trt_plugins.load_library(trt.module, path)
        records.append(
            trt_plugins.PluginRecord(
                path.name,
                sha256_file(path),
                str(path.resolve()),
                creators,
                serialized=version_compatible,
                architectures=trt_plugins.library_architectures(path),
            )
        )
    return records


# compute capabilities an AMPERE_PLUS engine may meet (8.0+):
# data-centre, desktop, Jetson Orin, Hopper, Blackwell
AMPERE_PLUS_CAPABILITIES = ((8, 0), (8, 6), (8, 7), (8, 9), (9, 0), (10, 0), (12, 0))


def _check_plugin_architectures(records, options: trt_flags.BuildOptions, gpu: dict) -> list[str]:
    """--hardware-compat: the engine may run on other GPUs, so its plugins must hold code for them
    too. InputError naming the fix when a plugin's recorded GPU code falls short; a note when it is
    unknown.
    """
    from edgedet.trt.version import parse_compute_capability

    level = trt_flags.HW_COMPAT[options.hardware_compatibility]
    if not level or not records:
        return []
    if level == "AMPERE_PLUS":
        targets = AMPERE_PLUS_CAPABILITIES
    else:  # SAME_COMPUTE_CAPABILITY
        cc = parse_compute_capability(gpu.get("compute_capability"))
        targets = (cc,) if cc else ()
    notes = []
    for r in records:
        if r.architectures is None:
            notes.append(
                f"--hardware-compat: the GPU code in plugin {r.file} is not recorded (no"
                f" {r.file}.json from `edgedet plugin build`); it may not run on other GPUs -"
                " rebuild it with `--arch portable`"
            )
            continue
        missing = [t for t in targets if not trt_plugins.runs_on(r.architectures, t)]
        if missing:
            raise InputError(
                f"--hardware-compat {options.hardware_compatibility}: plugin {r.file} holds GPU"
                f" code for {trt_plugins.describe_architectures(r.architectures)} only, not compute"
                f" capability {', '.join('{}.{}'.format(*t) for t in missing)}; rebuild it with"
                " `edgedet"
                " plugin build --arch portable` (machine code for sm_80-sm_90 plus compute_80 PTX)"
            )
    return notes


def _refuse_nvidia_plugins_in_version_compatible(model, options: trt_flags.BuildOptions) -> None:
    """--version-compatible with NVIDIA's EfficientNMS_TRT (--nms efficient): refused before
    TensorRT loads.

    A version-compatible plan runs in the lean runtime embedded in it, which sees only plugins
    serialized into the plan (IBuilderConfig.plugins_to_serialize), not libnvinfer_plugin registered
    in the host process (TensorRT docs, "Version Compatibility": plugins must be built as
    version-compatible and serialized, or the engine fails to load)."""
    if not options.version_compatible:
        return
    from edgedet.onnx.nms.efficient import tensorrt_only_ops

    ops = tensorrt_only_ops(model)
    if ops:
        raise InputError(
            f"--version-compatible cannot be used with NVIDIA's {', '.join(ops)} plugin (--nms"
            " efficient): the lean runtime inside a version-compatible engine does not see"
            " libnvinfer_plugin; re-export with --nms edgedet and pass --plugin"
            " libedgedet_nms_plugin.so (serialized into the engine), or build without"
            " --version-compatible"
        )


def _nvidia_plugins(trt: TensorRT, logger, model) -> list[str]:
    """Register NVIDIA's own plugins (libnvinfer_plugin: EfficientNMS_TRT, --nms efficient) before
    parsing when the graph uses one; documented call:
    tensorrt.init_libnvinfer_plugins(logger, namespace).
    """
    from edgedet.onnx.nms.efficient import tensorrt_only_ops

    ops = tensorrt_only_ops(model)
    if not ops:
        return []
    init = getattr(trt.module, "init_libnvinfer_plugins", None)
    if init is None or not init(logger, ""):
        raise ExportError(
            f"the model uses NVIDIA plugin ops {ops}, but libnvinfer_plugin could not be"
            " initialised (install the full TensorRT with its plugin library, or re-export with"
            " --nms edgedet)"
        )
    return [
        f"registered NVIDIA's plugin library for {', '.join(ops)} (libnvinfer_plugin must also be"
        " present where the engine runs)"
    ]


def _prepare_nms(model, trt: TensorRT, plugin_loaded: bool):
    """Strip the EdgeDetNMS local function when this TensorRT would inline it over the plugin."""
    info = strip.inspect_nms(model)
    notes: list[str] = []
    if not info.nodes:
        return model, False, notes
    if not plugin_loaded:
        notes.append(
            "EdgeDetNMS runs as its standard-op local function (no --plugin given); "
            "pass --plugin libedgedet_nms_plugin.so for the plugin"
        )
        return model, False, notes
    if not trt.version.features.domain_as_plugin_namespace:
        notes += list(info.attribute_problems)
    if trt_flags.strip_nms_function(trt.version, plugin_loaded, info.has_function):
        model, removed = strip.strip_nms_function(model)
        notes.append(
            f"TensorRT {trt.version} < 10.7: removed the EdgeDetNMS local function so the parser"
            " uses the plugin"
        )
        return model, removed, notes
    return model, False, notes


# ------------------------------------------------------------------ TensorRT calls


def _parse(
    trt: TensorRT,
    logger,
    book: LogBook,
    plan: trt_flags.FlagPlan,
    model,
    onnx_path: Path,
    stripped: bool,
):
    """Builder, network (creation flags by version) and the ONNX parser; ExportError naming nodes on
    failure."""
    t = trt.module
    builder = t.Builder(logger)
    flags = 0
    for name in plan.network_flags:  # by name: enum values changed in 11.0
        flags |= 1 << int(getattr(t.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = t.OnnxParser(network, logger)
    if stripped:
        # the in-memory model; `path` lets the parser find external weights next to the original
        # file
        ok = parser.parse(model.SerializeToString(), str(onnx_path))
    else:
        ok = parser.parse_from_file(str(onnx_path))
    if not ok:
        raise ExportError(
            f"TensorRT {trt.version} cannot parse {onnx_path}: "
            + "; ".join(parser_errors(parser, book))
        )
    return builder, network, parser


def parser_errors(parser, book: LogBook | None = None) -> list[str]:
    """Each parser error as "node NAME (OPERATOR): description [CODE]" plus a fix when we know one.

    ParserError.node_name()/node_operator() exist since TensorRT 10.0 (pyOnnx.cpp, v10.3.0).
    """
    out = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        name, op = e.node_name() or f"#{e.node()}", e.node_operator() or "?"
        out.append(f"node '{name}' ({op}): {e.desc()} [{e.code()}]" + _parser_hint(op))
    if not out and book is not None:
        out.append(book.last_error("the parser reported no error"))
    return out


def _parser_hint(op: str) -> str:
    from edgedet.nms import opdef

    if op == opdef.OP_TYPE:
        return (
            f" - load the NMS plugin with --plugin {opdef.PLUGIN_LIBRARY} (build it with `edgedet"
            " plugin build`), or keep the node's local function so the standard-op body is used"
        )
    return ""


def _plugin_layer_count(t, network) -> int:
    """Plugin layers in the parsed network: > 0 means the parser used a plugin, not a function
    body."""
    kinds = {getattr(t.LayerType, k) for k in ("PLUGIN_V2", "PLUGIN_V3") if hasattr(t.LayerType, k)}
    return sum(network.get_layer(i).type in kinds for i in range(network.num_layers))


def _configure(
    trt: TensorRT,
    builder,
    parser,
    plan: trt_flags.FlagPlan,
    o: trt_flags.BuildOptions,
    profile: list[ProfileShape],
    records,
    say,
):
    """IBuilderConfig for this build (see the numbered doc references inline)."""
    t = trt.module
    config = builder.create_builder_config()
    if o.workspace:
        config.set_memory_pool_limit(t.MemoryPoolType.WORKSPACE, o.workspace)
    config.builder_optimization_level = o.opt_level  # 0..5, default 3 (IBuilderConfig docs)
    # layer names + tactics for `edgedet inspect`
    config.profiling_verbosity = t.ProfilingVerbosity.DETAILED
    log = ProgressLog(say)
    monitor = make_progress_monitor(t, log)
    if monitor is not None:
        config.progress_monitor = monitor
    for name in plan.builder_flags:
        config.set_flag(getattr(t.BuilderFlag, name))
    if plan.hardware_level:
        config.hardware_compatibility_level = getattr(
            t.HardwareCompatibilityLevel, plan.hardware_level
        )
    if plan.device_type == "DLA":
        _configure_dla(t, builder, config, o.dla_core)
    if profile:
        p = builder.create_optimization_profile()
        for shape in profile:
            p.set_shape(shape.name, shape.min, shape.opt, shape.max)
        config.add_optimization_profile(p)
    if o.version_compatible:
        # get_used_vc_plugin_libraries: "provide this list to ... plugins_to_serialize"
        # (pyOnnxDoc.h)
        config.plugins_to_serialize = [r.path for r in records] + list(
            parser.get_used_vc_plugin_libraries()
        )
    _set_timing_cache(config, o, say)
    return config, log, monitor


def _configure_dla(t, builder, config, core: int) -> None:
    if core >= builder.num_DLA_cores:
        raise InputError(f"--dla {core}: this device has {builder.num_DLA_cores} DLA cores")
    config.default_device_type = t.DeviceType.DLA
    config.DLA_core = core


def _set_timing_cache(config, o: trt_flags.BuildOptions, say) -> None:
    """Start from the saved cache when there is one (create_timing_cache(bytes)), else an empty one.

    Two ways a saved cache is refused, both -> start empty with a one-line note: create_timing_cache
    returns None for a blob it cannot read, e.g. one from another TensorRT release (Polygraphy's
    backend/trt/config.py falls back to create_timing_cache(b"") for exactly this), and
    set_timing_cache(cache, ignore_mismatch=False) returns False for a cache from another device."""
    data = b""
    if o.timing_cache and Path(o.timing_cache).is_file():
        data = Path(o.timing_cache).read_bytes()
        if o.opt_level == 0:
            say("note: --opt-level 0 does not use the timing cache (IBuilderConfig docs)")
    cache = config.create_timing_cache(data)
    if cache is None and data:
        say(
            f"note: timing cache {o.timing_cache} cannot be read by this TensorRT (another"
            " release?); starting a new one"
        )
    elif cache is not None and config.set_timing_cache(cache, False):
        return
    elif data:
        say(
            f"note: timing cache {o.timing_cache} is from another GPU or TensorRT version; starting"
            " a new one"
        )
    config.set_timing_cache(config.create_timing_cache(b""), False)


def _build(trt: TensorRT, builder, network, config, book: LogBook, log: ProgressLog):
    """build_serialized_network returns None on failure (Builder docs); KeyboardInterrupt
    cancels."""
    try:
        plan = builder.build_serialized_network(network, config)
    except KeyboardInterrupt:
        log.cancel()
        raise
    if plan is None:
        if log.cancelled:
            raise KeyboardInterrupt
        raise ExportError(f"TensorRT {trt.version} failed to build the engine: {book.last_error()}")
    return plan


def _save_timing_cache(config, path: str | None, say) -> None:
    if not path:
        return
    data = config.get_timing_cache().serialize()
    write_bytes_atomic(path, bytes(memoryview(data)))
    say(f"timing cache saved to {path}")


def _tensorrt_section(
    trt: TensorRT,
    plan: trt_flags.FlagPlan,
    o: trt_flags.BuildOptions,
    gpu: dict,
    profile: list[ProfileShape],
    records,
    stripped: bool,
    plugin_layers: int,
) -> TensorRTSection:
    """The manifest's `tensorrt` section: what decides where the plan loads, and how it was
    built."""
    return TensorRTSection(
        version=str(trt.version),
        module=trt.name,
        precision=plan.precision,
        network_flags=list(plan.network_flags),
        builder_flags=list(plan.builder_flags),
        version_compatible=o.version_compatible,
        exclude_lean_runtime=o.exclude_lean_runtime,
        hardware_compatibility_level=plan.hardware_level or "NONE",
        gpu=gpu,
        profiles=[[p.to_dict() for p in profile]] if profile else [],
        plugins=list(records),
        plugin_layers=plugin_layers,
        nms_function_stripped=stripped,
        dla_core=o.dla_core,
        builder_optimization_level=o.opt_level,
        workspace_bytes=o.workspace,
        timing_cache=Path(o.timing_cache).name if o.timing_cache else None,
    )


def _write(output: Path, plan, manifest: Manifest) -> None:
    """The plain plan (IHostMemory supports the buffer protocol), then its manifest, atomically."""
    section = manifest.tensorrt
    manifest.tools = {"tensorrt": section.version, "tensorrt_module": section.module}
    write_artifact(output, plan, manifest)  # plan + manifest as one transaction
