"""DeepStream: an nvinfer config, a labels file and a minimal deepstream-app config for a detector.

nvinfer pre-processes each frame as ``y = net-scale-factor * (x - offsets[c])`` on 0..255 pixels in
``model-color-format`` order, scaling to the network size (keeping the aspect ratio and padding
both sides with ``maintain-aspect-ratio=1`` + ``symmetric-padding=1``). The stock parser
``NvDsInferParseCustomEfficientNMS`` in ``libnvds_infercustomparser.so`` reads exactly four outputs
*by position*: [0] int32 count, [1] float boxes (x1, y1, x2, y2) in network-input pixels (it asserts
the largest coordinate is >= 2, i.e. rejects normalised boxes), [2] float scores, [3] int32 classes,
thresholded with ``[class-attrs-all] pre-cluster-threshold``; ``cluster-mode=4`` turns DeepStream's
own clustering off. That is edgedet's contract with NMS in the graph (docs/contract.md).
Sources: DeepStream's Gst-nvinfer documentation (config file properties) and
``sources/libs/nvdsinfer_customparser/nvdsinfer_custombboxparser.cpp`` in the DeepStream SDK.

Everything here is a pure function of the manifest; :func:`write_deepstream` writes the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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
from edgedet.errors import InputError
from edgedet.fileio import write_text_atomic
from edgedet.manifest import Manifest

PARSER_FUNC = "NvDsInferParseCustomEfficientNMS"
PARSER_LIB = "/opt/nvidia/deepstream/deepstream/lib/libnvds_infercustomparser.so"
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer network-mode
COLOR_FORMAT = {"rgb": 0, "bgr": 1, "gray": 2}  # nvinfer model-color-format
SCALING_FILTER_BILINEAR = 1  # NvBufSurfTransform_Inter: edgedet letterboxes with bilinear resize
CLUSTER_NONE = 4  # cluster-mode: no clustering, NMS already ran in the graph
PARSER_OUTPUTS = contract.NMS_OUTPUTS  # the parser's positional order
PARSER_DTYPES = ("int32", "float32", "float32", "int32")
SAMPLE_URI = "file:///opt/nvidia/deepstream/deepstream/samples/streams/sample_1080p_h264.mp4"


@dataclass(frozen=True)
class Preprocess:
    """nvinfer's pre-processing keys that reproduce what edgedet's graph expects."""

    net_scale_factor: float
    offsets: tuple[float, float, float]
    model_color_format: int
    maintain_aspect_ratio: int
    symmetric_padding: int


def preprocess_keys(manifest: Manifest) -> Preprocess:
    """Map the manifest's input spec to nvinfer keys so ``y = s * (x - o)`` equals the graph's feed.

    The contract feeds RGB 0..1 (``x / 255``) and folds mean/std into the graph (``in_graph``);
    a manifest whose mean/std are *not* in the graph needs ``(x / 255 - mean) / std``, which
    nvinfer's single scale factor expresses only when the three std values are equal.
    """
    if manifest.input.dtype != "float32":
        raise InputError(
            f"{manifest.model} takes {manifest.input.dtype} input; nvinfer feeds the network float "
            "tensors it normalises itself - re-export with the default float32 input"
        )
    norm = manifest.normalization or {}
    scale, offsets = 1.0 / 255.0, (0.0, 0.0, 0.0)
    if not norm.get("in_graph", True):
        mean, std = list(norm.get("mean") or [0.0] * 3), list(norm.get("std") or [1.0] * 3)
        if len(set(std)) != 1:
            raise InputError(
                f"{manifest.model} normalises with per-channel std {std} outside the graph; nvinfer"
                " has one net-scale-factor for all channels - re-export with normalisation in the"
                " graph"
            )
        scale = 1.0 / (255.0 * std[0])
        offsets = tuple(255.0 * m for m in mean)
    letterbox = manifest.input.resize == "letterbox"
    return Preprocess(scale, offsets, COLOR_FORMAT["rgb"], int(letterbox), int(letterbox))


def check_parser_outputs(manifest: Manifest) -> None:
    """Refuse what NvDsInferParseCustomEfficientNMS cannot read, saying why."""
    if manifest.task != "detect":
        raise InputError(
            f"{manifest.model} is a {manifest.task} model; edgedet writes DeepStream configs for "
            "detectors (nvinfer network-type=0) only"
        )
    if manifest.output_kind != contract.KIND_NMS:
        raise InputError(
            f"{manifest.model} has raw outputs (boxes, scores; NMS on the host) and DeepStream's "
            f"{PARSER_FUNC} reads NMS outputs - re-export with --nms edgedet, graph or efficient"
        )
    names = output_names(manifest)
    if tuple(names) != PARSER_OUTPUTS:
        extra = [n for n in names if n not in PARSER_OUTPUTS]
        why = (
            f"it has the extra output(s) {extra} and the parser takes exactly four"
            if extra
            else f"they are in the order {names}"
        )
        raise InputError(
            f"{PARSER_FUNC} reads the outputs by position as {list(PARSER_OUTPUTS)}, but {why}; "
            "export a detector without masks, or reorder the graph outputs"
        )
    dtypes = tuple(o.dtype for o in manifest.outputs)
    if dtypes != PARSER_DTYPES:
        raise InputError(
            f"{PARSER_FUNC} reads int32 counts/classes and float32 boxes/scores; {manifest.model}'s"
            f" outputs are {dict(zip(names, dtypes))}"
        )


def batch_size(art: Artifact, requested: int | None = None) -> int:
    """The batch nvinfer and streammux run: the model's fixed batch, an engine's profile max, or
    ``requested``."""
    fixed = art.manifest.input.batch
    if fixed > 0:
        if requested not in (None, fixed):
            raise InputError(
                f"{art.path.name} has a fixed batch of {fixed}; --batch-size {requested} cannot run"
                " it (re-export with --dynamic-batch)"
            )
        return fixed
    if art.is_engine:
        top = profile_max_batch(art.manifest)
        if requested is not None and requested > top:
            raise InputError(f"--batch-size {requested} exceeds the engine's profile maximum {top}")
        return requested or top
    return requested or 1


def profile_max_batch(manifest: Manifest) -> int:
    """The largest batch of the engine's first optimisation profile for ``images`` (1 without
    one)."""
    for profile in (manifest.tensorrt.profiles if manifest.tensorrt else [])[:1]:
        for shape in profile:
            if shape.get("name", contract.INPUT_NAME) == manifest.input.name:
                return int(shape["max"][0])
    return 1


def nvinfer_config(
    art: Artifact, model_file: str, labels_file: str, batch: int, gpu_id: int = 0
) -> str:
    """The nvinfer ``[property]`` + ``[class-attrs-all]`` config for a primary detector."""
    m = art.manifest
    check_detector_input(m, "DeepStream")
    check_parser_outputs(m)
    if art.precision not in NETWORK_MODE:
        raise InputError(
            f"precision {art.precision!r} of {art.path.name} is not one of"
            f" {', '.join(NETWORK_MODE)}"
        )
    pre = preprocess_keys(m)
    model_key = "model-engine-file" if art.is_engine else "onnx-file"
    nms = m.nms
    lines = [
        (
            f"# nvinfer config for {m.family}/{m.model}, generated by edgedet from"
            f" {art.path.name}.json"
        ),
        *plugin_comments(art),
        "[property]",
        f"gpu-id={gpu_id}",
        f"{model_key}={model_file}",
        f"labelfile-path={labels_file}",
        f"batch-size={batch}",
        f"# {art.precision} file; "
        + (
            "the engine's precision is fixed"
            if art.is_engine
            else (
                "a Q/DQ graph carries its own scales (no int8-calib-file)"
                if art.precision == "int8"
                else "nvinfer builds the engine at this precision"
            )
        ),
        f"network-mode={NETWORK_MODE[art.precision]}",
        "network-type=0",
        "process-mode=1",
        "gie-unique-id=1",
        "interval=0",
        f"num-detected-classes={m.num_classes}",
        "# the graph takes RGB 0..1 and normalises itself: y = net-scale-factor * (x - offsets)",
        f"net-scale-factor={pre.net_scale_factor!r}",
        "offsets=" + ";".join(repr(float(o)) for o in pre.offsets),
        f"model-color-format={pre.model_color_format}",
        (
            f"# {m.input.resize}: edgedet pads with {m.input.pad_value}, nvinfer's symmetric"
            " padding is black (0)"
        ),
        f"maintain-aspect-ratio={pre.maintain_aspect_ratio}",
        f"symmetric-padding={pre.symmetric_padding}",
        f"scaling-filter={SCALING_FILTER_BILINEAR}",
        (
            f"# outputs by position: {', '.join(PARSER_OUTPUTS)} (NMS in the graph:"
            f" {m.nms_implementation})"
        ),
        f"parse-bbox-func-name={PARSER_FUNC}",
        f"custom-lib-path={PARSER_LIB}",
        f"cluster-mode={CLUSTER_NONE}",
        "",
        "[class-attrs-all]",
        f"pre-cluster-threshold={nms.score_threshold if nms else 0.0!r}",
        "",
    ]
    return "\n".join(lines)


def plugin_comments(art: Artifact) -> list[str]:
    """How the engine's plugin library gets into nvinfer's process: custom-lib-path holds the parser
    library (nvinfer has one), so it is preloaded; it must be in the process before nvinfer
    deserialises the engine.
    """
    libs = plugins_to_load(art.manifest) if art.is_engine else []
    if not libs:
        return []
    return [
        (
            "# the engine needs its TensorRT plugin library loaded: start with"
            f" LD_PRELOAD={':'.join(libs)}"
        ),
        f"# ({PLUGIN_REBUILD_NOTE})",
    ]


def labels_text(manifest: Manifest) -> str:
    """One class name per line, in class-index order (nvinfer's detector label file)."""
    bad = [n for n in manifest.class_names if "\n" in n or ";" in n]
    if bad:
        raise InputError(
            f"class names {bad} contain a newline or ';', which nvinfer's label file cannot hold"
        )
    return "".join(f"{name}\n" for name in manifest.class_names)


def run_command(art: Artifact) -> str:
    """The deepstream-app command line for the generated folder (LD_PRELOAD for an engine's plugin
    library)."""
    libs = plugins_to_load(art.manifest) if art.is_engine else []
    return (
        f"LD_PRELOAD={':'.join(libs)} " if libs else ""
    ) + "deepstream-app -c deepstream_app.txt"


def app_config(
    infer_config: str,
    batch: int,
    uri: str = SAMPLE_URI,
    width: int = 1920,
    height: int = 1080,
    command: str = "deepstream-app -c deepstream_app.txt",
) -> str:
    """A minimal deepstream-app config: ``batch`` copies of one source -> streammux -> nvinfer ->
    fakesink."""
    return "\n".join(
        [
            f"# {command}   (generated by edgedet)",
            "[application]",
            "enable-perf-measurement=1",
            "perf-measurement-interval-sec=5",
            "",
            "[source0]",
            "enable=1",
            "# 3 = multi-URI: num-sources copies of uri, batched by streammux",
            "type=3",
            f"uri={uri}",
            f"num-sources={batch}",
            "gpu-id=0",
            "",
            "[streammux]",
            "gpu-id=0",
            "live-source=0",
            f"batch-size={batch}",
            "batched-push-timeout=40000",
            f"width={width}",
            f"height={height}",
            "enable-padding=0",
            "",
            "[primary-gie]",
            "enable=1",
            "gpu-id=0",
            f"batch-size={batch}",
            "gie-unique-id=1",
            f"config-file={infer_config}",
            "",
            "[osd]",
            "enable=0",
            "",
            "[sink0]",
            "enable=1",
            "# 1 = fakesink: measure throughput without a display",
            "type=1",
            "sync=0",
            "",
        ]
    )


def write_deepstream(
    model: str | os.PathLike,
    out_dir: str | os.PathLike,
    batch: int | None = None,
    uri: str = SAMPLE_URI,
) -> list[Path]:
    """Write DIR/{model file + manifest, labels.txt, config_infer_primary.txt, deepstream_app.txt}.

    Paths inside the configs are relative: nvinfer and deepstream-app resolve them against the
    config file's folder, so the folder can be copied to the device as it is.
    """
    art = open_artifact(model)
    n = batch_size(art, batch)
    out = Path(out_dir)
    # validates before anything is written
    infer = nvinfer_config(art, art.path.name, "labels.txt", n)
    files = {
        out / "labels.txt": labels_text(art.manifest),
        out / "config_infer_primary.txt": infer,
        out / "deepstream_app.txt": app_config(
            "config_infer_primary.txt", n, uri, command=run_command(art)
        ),
    }
    copied = copy_artifact(art, out / art.path.name)
    for path, text in files.items():
        write_text_atomic(path, text)
    return [copied, *files]
