"""End to end on ONNX Runtime (CPU): JPEG path -> Detections, vs the model alone and Ultralytics.

Models (built in --work, reused when present):
  nano       edgedet's nano at 320 (shipped weights): --nms edgedet and --nms none
  yolov8n    a YOLOv8n at 640: Ultralytics' own ONNX export of yolov8n.yaml where ultralytics is
             installed (else a same-shaped torch graph, see yolov8n_like), random weights whose
             class biases are re-drawn so scores spread as a trained model's do (Ultralytics' prior
             bias leaves every score near 1e-5, and NMS would see no candidate); edgedet's contract
             by attach-nms (combined output, cxcywh) with Ultralytics' predict defaults (conf 0.25,
             IoU 0.7, 300 detections), --nms edgedet and --nms none
  frcnn      torchvision fasterrcnn_mobilenet_v3_large_320_fpn and fasterrcnn_resnet50_fpn (the
             1.6 s per image of docs/models.md), both at 320, random weights, two EdgeDetNMS nodes
             each (proposals, final per-class); the final NMS score threshold is set to 0.001 on the
             benchmark's copies so the final NMS sees the full top_k = 4096 candidates (of 150 x 91
             and 1000 x 91 proposal-class pairs), as at the COCO protocol
Photos: --photo (default /work/shared/data/images/photo01.jpg) centre-cropped to 4:3 and resized
to 640x480 and to 4000x3000 (12 MP), JPEG quality 90; or every JPEG of --folder.
Every round times every figure once, in turn, so background load hits all alike; p50 over rounds.
After each figure the benchmark sleeps --settle seconds (0.1): Ultralytics' session keeps ONNX
Runtime's default thread spinning, whose idle workers keep a core busy for ~60 ms after each run
(benchmarks/ort_spinning.py), and without the pause that tail lands on the next figure's time
(its own predict call still pays it). Threads: ONNX Runtime's default count everywhere (intra-op =
physical cores), edgedet and Ultralytics alike; spinning: edgedet's default ("run": busy-wait only
while a run is in progress) for every edgedet session, the model-only one included.
Usage: python -m benchmarks.e2e [--rounds 15] [--settle 0.1] [--work data/e2e] [--folder DIR]
[--json benchmarks/results/e2e.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_results

INCLUDES = {
    "model_only": (
        "ORT session.run of the model without NMS (nano/yolov8n: the raw export; the same session "
        "options as edgedet's backend) on an already letterboxed input"
    ),
    "infer_host": (
        "edgedet backend.infer of the --nms edgedet model, default: graph split at EdgeDetNMS, "
        "host NMS between the ORT slices (edgedet_nms='host')"
    ),
    "infer_function": (
        "the same model, ORT running the EdgeDetNMS function body (edgedet_nms='function'): before"
    ),
    "host_nms": (
        "edgedet.nms.host.batched_nms (the --nms none path's NMS) on the raw model's outputs for"
        " the same input, timed from call to return right after the raw model's ORT run (untimed),"
        " so that it starts from the same cache state as the split path's NMS step (stage_nms); its"
        " inputs are checked bit-identical to the step's and its thresholds equal in float32"
        " (nms_inputs_identical)"
    ),
    "nms_function_body": (
        "ORT running each EdgeDetNMS node alone (its function body) on the tensors the split "
        "path hands the host NMS: the in-graph NMS cost before this change"
    ),
    "e2e_*": "Detector(path): decode + letterbox + model + NMS + map back to Detections, one call",
    "e2e_full_decode": "as e2e_host with load(full_decode=True): every JPEG decoded at full size",
    "e2e_ultralytics": (
        "YOLO(onnx).predict(path): cv2 decode, letterbox, ORT, torchvision NMS, Results"
    ),
    "overhead_*_paired": (
        "the same e2e call (e2e_host / e2e_ultralytics, same round) minus the time spent inside "
        "InferenceSession.run during that call (each session's run wrapped with a timer): "
        "everything but the model, with the model's round-to-round noise cancelled. edgedet: "
        "decode, letterbox, NCHW, input checks, host NMS, glue between the ORT slices, map back, "
        "Detections. Ultralytics: cv2 decode, letterbox, torch conversions (incl. tensor -> numpy "
        "around session.run), torchvision NMS, box scaling, Results; its session keeps ORT's "
        "default spinning, so its idle ORT threads may still spin on the second core then. "
        "*_paired_cpu: the same, in CPU time of the calling thread (time.thread_time)"
    ),
    "stage_*": (
        "the default path taken apart in the same round: read (decode), letterbox (+ NCHW float),"
        " model (ORT slices), nms (the HostNMS steps' run(): inputs from the slice's outputs,"
        " batched_nms, casts to the node's output types, outputs stored for the next slice; timed"
        " from call to return right after the ORT slice), mapback (postprocess to Detections)"
    ),
}


# ----------------------------------------------------------------------------------------- inputs


def make_photos(src: Path, work: Path) -> dict[str, Path]:
    from PIL import Image

    out = {}
    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        cw, ch = min(w, h * 4 // 3), min(h, w * 3 // 4)
        im = im.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
        for name, size in (("640x480", (640, 480)), ("12MP", (4000, 3000))):
            out[name] = work / f"photo_{name}.jpg"
            if not out[name].exists():
                im.resize(size, Image.BICUBIC).save(out[name], quality=90)
    return out


def nano_models(work: Path) -> dict[str, Path]:
    from exporters import nano
    from exporters.pipeline import ExportOptions, export

    paths = {"edgedet": work / "nano.onnx", "none": work / "nano_raw.onnx"}
    for nms, path in paths.items():
        if not path.exists():
            export(
                ExportOptions(model="nano", weights=str(nano.WEIGHTS_PATH), nms=nms, verify=False),
                path,
            )
    return paths


def ultralytics_onnx(work: Path) -> Path | None:
    """Ultralytics' export of a random-weight yolov8n.yaml with spread class biases; None without
    ultralytics."""
    try:
        from ultralytics import YOLO
    except ImportError:
        return None
    path = work / "yolov8n.onnx"
    if not path.exists():
        import torch

        model = YOLO("yolov8n.yaml")
        torch.manual_seed(0)
        # class branches: last conv's bias sets the score prior
        for seq in model.model.model[-1].cv3:
            seq[-1].bias.data.normal_(-4.0, 1.5)
        exported = Path(
            model.export(format="onnx", imgsz=640, simplify=False, opset=17, dynamic=False)
        )
        exported.replace(path)
    return path


def yolov8n_like(work: Path) -> Path:
    """Without ultralytics: a torch graph of YOLOv8n's shape (3->16->...->256 channel backbone at
    strides 8/16/32, a 144-channel box+class map per level) ending in [1, 84, 8400] (cx, cy, w, h +
    80 sigmoids).
    """
    import torch
    from torch import nn

    def conv(c1, c2, s=1):
        return nn.Sequential(nn.Conv2d(c1, c2, 3, s, 1, bias=False), nn.BatchNorm2d(c2), nn.SiLU())

    class Like(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [3, 16, 32, 64, 128, 256]
            self.stages = nn.ModuleList(
                nn.Sequential(conv(a, b, 2), conv(b, b), conv(b, b))
                for a, b in zip(widths, widths[1:])
            )
            self.heads = nn.ModuleList(
                nn.Sequential(conv(c, 64), conv(64, 64), nn.Conv2d(64, 84, 1))
                for c in (64, 128, 256)
            )

        def forward(self, x):
            feats = []
            for i, stage in enumerate(self.stages):
                x = stage(x)
                if i >= 2:
                    feats.append(x)
            out = torch.cat([h(f).flatten(2) for h, f in zip(self.heads, feats)], 2)
            xy, wh, cls = (
                out[:, :2].sigmoid() * 640,
                out[:, 2:4].sigmoid() * 200,
                out[:, 4:].sigmoid(),
            )
            return torch.cat([xy, wh, cls], 1)

    path = work / "yolov8n_like.onnx"
    if not path.exists():
        torch.manual_seed(0)
        torch.onnx.export(
            Like().eval(),
            torch.zeros(1, 3, 640, 640),
            str(path),
            input_names=["images"],
            output_names=["output0"],
            opset_version=17,
            dynamo=False,
        )
    return path


def yolo_models(work: Path) -> tuple[dict[str, Path], Path | None]:
    from edgedet.nms.params import NMSParams
    from edgedet.onnx.byo.attach import ByoSpec, attach_file

    source = ultralytics_onnx(work)
    base = _rename_input(source or yolov8n_like(work), work / "yolo_base.onnx")
    nms = NMSParams(score_threshold=0.25, iou_threshold=0.7, max_output_boxes=300, top_k=1000)
    paths = {"edgedet": work / "yolo_edgedet.onnx", "none": work / "yolo_raw.onnx"}
    for impl, path in paths.items():
        if not path.exists():
            attach_file(base, path, ByoSpec(combined="output0", box_format="cxcywh"), nms, impl)
    return paths, source


def _rename_input(src: Path, out: Path, new: str = "source_images") -> Path:
    """Copy of ``src`` whose image input is renamed: attach-nms (edgedet/onnx/byo/attach.py)
    currently emits a duplicate 'images' tensor when the input already has the contract's name
    (Ultralytics' does)."""
    import onnx

    if not out.exists():
        model = onnx.load(str(src))
        old = model.graph.input[0].name
        model.graph.input[0].name = new
        for node in model.graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
        onnx.save(model, str(out))
    return out


# name in the JSON -> (torchvision model, file stem); resnet50 at 320 is the model whose 1.6 s per
# image (docs/models.md, NMS function bodies on ONNX Runtime) the issue quotes
RCNN_MODELS = {
    "frcnn_mobilenet_320": ("fasterrcnn_mobilenet_v3_large_320_fpn", "frcnn"),
    "frcnn_resnet50_320": ("fasterrcnn_resnet50_fpn", "frcnn_r50"),
}


def rcnn_model(work: Path, name: str = "frcnn_mobilenet_320") -> Path:
    import onnx

    from edgedet.backends.ort_split import is_nms
    from exporters.pipeline import ExportOptions, export

    model_name, stem = RCNN_MODELS[name]
    path = work / f"{stem}.onnx"
    if not path.exists():
        tmp = work / f"{stem}_export.onnx"
        export(ExportOptions(model=model_name, imgsz=320, verify=False), tmp)
        model = onnx.load(str(tmp))
        final = [n for n in model.graph.node if is_nms(n)][-1]
        for a in final.attribute:
            if a.name == "score_threshold":
                a.f = 0.001
        from edgedet.manifest import read_manifest, write_onnx_artifact

        # re-hashed manifest beside it
        write_onnx_artifact(model, path, read_manifest(tmp, verify=False))
    return path


# ----------------------------------------------------------------------------------------- timing


def stages(det, photo: Path) -> dict[str, float]:
    """The default path taken apart: seconds per stage for one image."""
    from edgedet.backends.ort_split import HostNMS
    from edgedet.preprocess import letterbox, read_image_for_input, to_input

    t = [time.perf_counter()]
    rgb, size = read_image_for_input(photo, det.input.height, det.input.width)
    t.append(time.perf_counter())
    canvas, info = letterbox(
        rgb, det.input.height, det.input.width, det.input.pad_value, source_size=size
    )
    x = to_input([canvas], det.input.dtype)
    t.append(time.perf_counter())
    split = det.backend.split
    store = {**split.constants, det.input.name: x}
    model = nms = 0.0
    for step in split.steps:
        t0 = time.perf_counter()
        step.run(store)
        if isinstance(step, HostNMS):
            nms += time.perf_counter() - t0
        else:
            model += time.perf_counter() - t0
    outputs = dict(zip(split.output_names, (store[n] for n in split.output_names)))
    t2 = time.perf_counter()
    det.postprocess(outputs, [info], [str(photo)])
    mapback = time.perf_counter() - t2
    return {
        "stage_read": t[1] - t[0],
        "stage_letterbox": t[2] - t[1],
        "stage_model": model,
        "stage_nms": nms,
        "stage_mapback": mapback,
    }


def function_body_runs(det, x: np.ndarray) -> list:
    """One callable per EdgeDetNMS node: ONNX Runtime running that node alone (its standard-op
    function body, the 'before' path) on the very tensors the split path hands the host NMS for
    input ``x``.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from edgedet.backends.ort_split import HostNMS, is_nms

    model = onnx.load(str(det.path))
    split = det.backend.split
    store = {**split.constants, det.input.name: x}
    runs = []
    for step in split.steps:
        if isinstance(step, HostNMS):
            node = next(n for n in model.graph.node if is_nms(n) and list(n.output) == step.outputs)
            feed = {n: store[n] for n in step.inputs if n}
            inputs = [
                helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                for n, v in feed.items()
            ]
            outputs = [helper.make_empty_tensor_value_info(o) for o in node.output]
            graph = helper.make_graph([node], "nms_only", inputs, outputs)
            alone = helper.make_model(
                graph,
                opset_imports=list(model.opset_import),
                ir_version=model.ir_version,
                functions=list(model.functions),
            )
            options = ort.SessionOptions()
            options.log_severity_level = 3
            sess = ort.InferenceSession(
                alone.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
            runs.append(lambda sess=sess, feed=feed: sess.run(None, feed))
        step.run(store)
    return runs


# callables that time their own parts
SUB_FIGURES = (
    "stages",
    "host_nms",
    "e2e_host",
    "e2e_ultralytics",
)


class SessionTimer:
    """Seconds spent inside InferenceSession.run of the wrapped sessions since the last reset: wall
    clock (``total``) and CPU time of the calling thread (``cpu``)."""

    def __init__(self, sessions) -> None:
        self.total = self.cpu = 0.0
        for session in sessions:
            run = session.run

            def timed(*args, _run=run, **kwargs):
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return _run(*args, **kwargs)
                finally:
                    self.total += time.perf_counter() - t0
                    self.cpu += time.thread_time() - c0

            session.run = (
                timed  # instance attribute: shadows the class method for this session only
            )

    def call(self, fn, name: str, overhead: str) -> dict[str, float]:
        """Time ``fn()`` whole, and the part of it outside ORT's run (the paired overhead), also as
        CPU time of the calling thread (``overhead``_cpu: the work itself, without the waits for a
        core that a loaded machine adds)."""
        self.total = self.cpu = 0.0
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        return {name: wall, overhead: wall - self.total, overhead + "_cpu": cpu - self.cpu}


def host_nms_after_model(raw, x: np.ndarray) -> dict[str, float]:
    """The --nms none path's NMS alone: the raw model runs first (untimed), as before the split
    path's NMS step, then edgedet.nms.host.batched_nms on its fresh outputs is timed. Timing NMS on
    tensors computed once, outside the round, measured it from a different cache state: whichever
    NMS runs first after an ORT run is slower (nano: 0.6 vs 0.3 ms for the same call repeated at
    once)."""
    from edgedet.nms.host import batched_nms

    out = raw.infer(x)
    t0 = time.perf_counter()
    batched_nms(out["boxes"], out["scores"], raw.nms_params)
    return {"host_nms": time.perf_counter() - t0}


def same_nms_inputs(det, raw, x: np.ndarray) -> bool:
    """True when the split path's NMS step sees the raw model's outputs bit for bit, with the same
    thresholds in float32: the two NMS figures then time the same work on the same tensors."""
    from edgedet.backends.ort_split import HostNMS

    split = det.backend.split
    store = {**split.constants, det.input.name: x}
    for step in split.steps:
        if isinstance(step, HostNMS):
            break
        step.run(store)
    ref = raw.infer(x)
    f32 = np.float32
    return (
        np.array_equal(store[step.inputs[0]], ref["boxes"])
        and np.array_equal(store[step.inputs[1]], ref["scores"])
        and f32(step.params.score_threshold) == f32(raw.nms_params.score_threshold)
        and f32(step.params.iou_threshold) == f32(raw.nms_params.iou_threshold)
        and step.params.top_k == raw.nms_params.top_k
        and step.params.max_output_boxes == raw.nms_params.max_output_boxes
    )


SETTLE_S = 0.1


def run_rounds(
    figures: dict, rounds: int, warmup: int = 2, settle: float = SETTLE_S
) -> dict[str, list[float]]:
    """figures: name -> callable, timed whole; one returning a dict gives its own sub-figures in
    seconds. ``settle`` seconds of sleep after each figure (see the module docstring)."""
    times: dict[str, list[float]] = {}
    names = list(figures)
    for r in range(rounds + warmup):
        # rotate so no figure always runs first
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            sub = figures[name]()
            dt = time.perf_counter() - t0
            time.sleep(settle)
            if r < warmup:
                continue
            for key, value in (
                sub if isinstance(sub, dict) and name in SUB_FIGURES else {name: dt}
            ).items():
                times.setdefault(key, []).append(value)
    return times


def p50(times: dict[str, list[float]]) -> dict[str, float]:
    return {k: round(float(np.median(v)) * 1e3, 2) for k, v in times.items()}


def fastest(times: dict[str, list[float]]) -> dict[str, float]:
    """Min over rounds: on a machine shared with other jobs, the figure least inflated by waiting
    for a core."""
    return {k: round(min(v) * 1e3, 2) for k, v in times.items()}


def detector_group(
    paths: dict[str, Path],
    photos: dict[str, Path],
    rounds: int,
    ultra: Path | None,
    settle: float = SETTLE_S,
) -> dict:
    import edgedet

    det = edgedet.load(paths["edgedet"])
    det_fn = edgedet.load(paths["edgedet"], edgedet_nms="function")
    det_full = edgedet.load(paths["edgedet"], full_decode=True)
    raw = edgedet.load(paths["none"])
    assert det.backend.split is not None and det_fn.backend.split is None
    det_timer = SessionTimer(
        [step.session for step in det.backend.split.steps if hasattr(step, "session")]
    )
    ul = ul_timer = None
    if ultra is not None:
        from ultralytics import YOLO

        ul = YOLO(str(ultra), task="detect")
    out = {}
    for name, photo in photos.items():
        x, _, _ = det.preprocess([photo])
        body = function_body_runs(det, x)
        a, b = det.infer(x), det_fn.infer(x)
        same = all(np.array_equal(a[k], b[k]) for k in a)
        figures = {
            "model_only": lambda: raw.infer(x),
            "infer_host": lambda: det.infer(x),
            "infer_function": lambda: det_fn.infer(x),
            "host_nms": lambda: host_nms_after_model(raw, x),
            "nms_function_body": lambda: [run() for run in body],
            "e2e_host": lambda: det_timer.call(
                lambda: det(photo), "e2e_host", "overhead_edgedet_paired"
            ),
            "e2e_function": lambda: det_fn(photo),
            "e2e_nms_none": lambda: raw(photo),
            "stages": lambda: stages(det, photo),
        }
        if max(det.input.height, det.input.width) * 2 <= min(_size(photo)):
            figures["e2e_full_decode"] = lambda: det_full(photo)
        if ul is not None:
            kw = dict(imgsz=640, conf=0.25, iou=0.7, max_det=300, verbose=False, save=False)
            ul.predict(str(photo), **kw)
            if ul_timer is None:  # the predictor (and its session) exists after the first predict
                ul_timer = SessionTimer([ul.predictor.model.backend.session])
            figures["e2e_ultralytics"] = lambda t=ul_timer: t.call(
                lambda: ul.predict(str(photo), **kw),
                "e2e_ultralytics",
                "overhead_ultralytics_paired",
            )
        times = run_rounds(figures, rounds, settle=settle)
        out[name] = {
            "detections": len(det(photo)),
            "bit_identical_host_vs_function": bool(same),
            "nms_inputs_identical": same_nms_inputs(det, raw, x),
            "p50": derive(p50(times)),
            "min": derive(fastest(times)),
        }
        print(name, json.dumps(out[name]))
    return out


def derive(row: dict) -> dict:
    """The ratios the done-criteria read. NMS cost, measured directly on the same tensors: before =
    ORT running the EdgeDetNMS function body alone; after = the split path's host NMS steps (incl.
    the casts to the node's output types); reference = edgedet.nms.host.batched_nms on the raw
    model's outputs.
    """
    m = row["model_only"]
    d = {
        "nms_before_over_host_nms": round(row["nms_function_body"] / row["host_nms"], 2),
        "nms_after_over_host_nms": round(row["stage_nms"] / row["host_nms"], 2),
        "infer_function_minus_model_only_ms": round(row["infer_function"] - m, 2),
        "infer_host_minus_model_only_ms": round(row["infer_host"] - m, 2),
        "e2e_host_over_model_only": round(row["e2e_host"] / m, 3),
        "e2e_function_over_model_only": round(row["e2e_function"] / m, 3),
    }
    if "e2e_ultralytics" in row:
        d["overhead_edgedet_ms"] = round(row["e2e_host"] - m, 2)
        d["overhead_ultralytics_ms"] = round(row["e2e_ultralytics"] - m, 2)
        d["overhead_edgedet_over_ultralytics"] = round(
            d["overhead_edgedet_ms"] / d["overhead_ultralytics_ms"], 3
        )
        d["e2e_ultralytics_over_model_only"] = round(row["e2e_ultralytics"] / m, 3)
        d["overhead_paired_edgedet_over_ultralytics"] = round(
            row["overhead_edgedet_paired"] / row["overhead_ultralytics_paired"], 3
        )
        d["overhead_paired_cpu_edgedet_over_ultralytics"] = round(
            row["overhead_edgedet_paired_cpu"] / row["overhead_ultralytics_paired_cpu"], 3
        )
    return {"ms": row, "derived": d}


def split_host_nms(det, x: np.ndarray) -> dict:
    """A model with no NMS-free variant (R-CNN: NMS between the stages): the split path run step by
    step, and at each EdgeDetNMS node ``edgedet.nms.host.batched_nms`` called directly on that
    step's inputs, timed from call to return right after the ORT slice that produced them (as
    host_nms_after_model); the step itself then runs untimed to feed the next slice. ``host_nms``:
    the sum over the nodes; ``same``: every direct result equals the step's outputs bit for bit.
    """
    from edgedet.backends.ort_split import HostNMS
    from edgedet.nms.host import batched_nms

    split = det.backend.split
    store = {**split.constants, det.input.name: x}
    total, same = 0.0, True
    for step in split.steps:
        if isinstance(step, HostNMS):
            boxes, scores, anchors = step.arrays(store)
            t0 = time.perf_counter()
            res = batched_nms(boxes, scores, step.params, anchors)
            total += time.perf_counter() - t0
            step.run(store)
            direct = (res.num_dets, res.det_boxes, res.det_scores, res.det_classes)
            same &= all(
                np.array_equal(store[n], direct[i].astype(store[n].dtype, copy=False))
                for i, n in enumerate(step.outputs)
                if n
            )
        else:
            step.run(store)
    return {"host_nms": total, "same": same}


def rcnn_group(path: Path, photo: Path, rounds: int, settle: float = SETTLE_S) -> dict:
    import edgedet

    det = edgedet.load(path)
    det_fn = edgedet.load(path, edgedet_nms="function")
    x, _, _ = det.preprocess([photo])
    a, b = det.infer(x), det_fn.infer(x)
    body = function_body_runs(det, x)
    figures = {
        "infer_host": lambda: det.infer(x),
        "infer_function": lambda: det_fn.infer(x),
        "nms_function_body": lambda: [run() for run in body],
        "host_nms": lambda: {"host_nms": split_host_nms(det, x)["host_nms"]},
        "e2e_host": lambda: det(photo),
        "e2e_function": lambda: det_fn(photo),
        "stages": lambda: stages(det, photo),
    }
    times = run_rounds(figures, rounds, settle=settle)
    out = {
        "nms_nodes": sum(1 for _ in body),
        "detections": int(a["num_dets"][0, 0]),
        "bit_identical_host_vs_function": all(np.array_equal(a[k], b[k]) for k in a),
        "host_nms_equals_split_step": split_host_nms(det, x)["same"],
        "note": (
            "no NMS-free variant exists (NMS sits between the stages): host_nms is"
            " edgedet.nms.host.batched_nms called directly on each EdgeDetNMS node's inputs inside"
            " the split path (split_host_nms), stage_nms the split path's own steps, and"
            " nms_function_body ONNX Runtime running each node's function body alone on the same"
            " tensors; all summed over the nodes"
        ),
    }
    for stat, row in (("p50", p50(times)), ("min", fastest(times))):
        out[stat] = {"ms": row, "derived": _rcnn_derived(row)}
    print(path.stem, json.dumps(out))
    return out


def _rcnn_derived(row: dict) -> dict:
    return {
        "nms_before_over_host_nms": round(row["nms_function_body"] / row["host_nms"], 2),
        "nms_after_over_host_nms": round(row["stage_nms"] / row["host_nms"], 2),
        "infer_function_minus_slices_ms": round(row["infer_function"] - row["stage_model"], 2),
        "infer_host_minus_slices_ms": round(row["infer_host"] - row["stage_model"], 2),
        "e2e_function_over_e2e_host": round(row["e2e_function"] / row["e2e_host"], 2),
    }


def _size(photo: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(photo) as im:
        return im.height, im.width


# ----------------------------------------------------------------------------- load + first result

FIRST_RESULT = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import edgedet
det = edgedet.load(sys.argv[1])
t1 = time.perf_counter()
d = det(sys.argv[2])
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"load_s": t1 - t0, "first_result_s": t2 - t1,
                  "total_s": t2 - t0, "cpu_s": c2 - c0,
                  "detections": len(d), "torch_imported": "torch" in sys.modules,
                  "onnx_imported": "onnx" in sys.modules}))
"""


def first_result(model: Path, photo: Path, runs: int = 15, warmup: int = 1) -> dict:
    """Fresh interpreter per run: import edgedet + load + first Detections (process start
    excluded). ``warmup`` untimed runs first, so that the libraries' files are in the page cache
    (as on a device that has run the detector before; a first start after boot reads them from
    disk, which this machine cannot reproduce)."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")) if p
        ),
    )
    rows = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", FIRST_RESULT, str(model), str(photo)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(warmup + runs)
    ][warmup:]
    total = [r["total_s"] for r in rows]

    def q(key: str, pct: float) -> float:
        return round(float(np.percentile([r[key] for r in rows], pct)), 3)

    return {
        "includes": (
            "fresh python: import edgedet + edgedet.load(nano) + det(640x480 JPEG);"
            f" {warmup} untimed run(s) before, for the page cache"
        ),
        "total_s_p50": q("total_s", 50),
        "total_s_p90": q("total_s", 90),
        "total_s_max": round(max(total), 3),
        "total_s_all": [round(t, 3) for t in total],
        "load_s_p50": q("load_s", 50),
        "first_result_s_p50": q("first_result_s", 50),
        "cpu_s_p50": q("cpu_s", 50),
        "cpu_s_means": (
            "CPU time of the process (all threads): what the work costs without the waiting "
            "for a core that a loaded machine adds to the wall-clock figure"
        ),
        "torch_imported": any(r["torch_imported"] for r in rows),
        "onnx_imported": any(r["onnx_imported"] for r in rows),
        "runs": runs,
    }


def versions() -> dict:
    import cv2
    import onnxruntime
    import PIL

    v = {
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
    }
    try:
        import ultralytics

        v["ultralytics"] = ultralytics.__version__
    except ImportError:
        v["ultralytics"] = None
    return v


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--work", default="data/e2e")
    ap.add_argument("--photo", default="../shared/data/images/photo01.jpg")
    ap.add_argument(
        "--folder", help="time every JPEG of this folder instead of the two generated photos"
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["nano", "yolov8n", "frcnn", "first"])
    ap.add_argument(
        "--settle", type=float, default=SETTLE_S, help="seconds of sleep after each figure"
    )
    ap.add_argument("--json", default="benchmarks/results/e2e.json")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    photos = (
        {p.stem: p for p in sorted(Path(args.folder).glob("*.jp*g"))}
        if args.folder
        else make_photos(Path(args.photo), work)
    )
    load_before = os.getloadavg()
    results = {}
    if "first" not in args.skip:
        results["load_and_first_result"] = first_result(
            nano_models(work)["edgedet"], next(iter(photos.values()))
        )
        print("first", results["load_and_first_result"])
    if "nano" not in args.skip:
        results["nano_320"] = detector_group(
            nano_models(work), photos, args.rounds, None, args.settle
        )
    if "yolov8n" not in args.skip:
        paths, ultra = yolo_models(work)
        results["yolov8n_640"] = {
            "source": "ultralytics export" if ultra else "yolov8n_like (torch)",
            **detector_group(paths, photos, args.rounds, ultra, args.settle),
        }
    for name in RCNN_MODELS:
        if "frcnn" not in args.skip:
            results[name] = rcnn_group(
                rcnn_model(work, name),
                next(iter(photos.values())),
                max(3, args.rounds // 3),
                args.settle,
            )
    write_results(
        args.json,
        "e2e",
        {
            "includes": INCLUDES,
            "method": __doc__.split("Usage:")[0].strip(),
            "versions": versions(),
            "rounds": args.rounds,
            "settle_s": args.settle,
            "load_average_before_after": [load_before, os.getloadavg()],
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
