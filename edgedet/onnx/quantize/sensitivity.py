"""Which quantised layers move the boxes: per-layer sensitivity and fallback under an accuracy
budget.

Everything here works on one calibrated Q/DQ graph: a layer is "dequantised" by rewiring its
inputs around their Q/DQ pairs (activations to the float tensor, weights to the FP32 initializer),
so no variant needs a new calibration. Agreement is measured on detection outputs (after NMS)
against the FP32 model on held-out images, with edgedet's compare matching:

  matched     min(matched_a, matched_b) at IoU 0.9 (a box that moved is a box lost)
  iou_drift   1 - mean IoU of the pairs matched at IoU 0.5
  score_drift mean |score delta| of those pairs

Sensitivity modes (``mode``):
  alone    (default) start from FP32 and quantise one layer: its isolated error;
  exclude  start from the full INT8 graph and dequantise one layer: what falling back that one
           layer buys with every other layer quantised.
Both cost one ONNX Runtime session and one pass over the sensitivity images per layer. ``alone``
measured better (benchmarks/precision_budget.py, SSDlite): where full INT8 has collapsed, no single
fallback changes the matched fraction, so ``exclude`` ranks on noise (90 of 96 layers fell back for
--budget 0.97) while ``alone`` still sees each layer's damage (59 of 96).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgedet import contract
from edgedet.eval.compare import ParityAccumulator
from edgedet.manifest import Manifest

if TYPE_CHECKING:
    import onnx

LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add")  # what int8.TRT_OPS puts Q/DQ on
MODES = ("exclude", "alone")
MATCH_IOU = 0.9


@dataclass
class _Dets:
    """Detections of one image in letterboxed pixels (IoU does not change under the letterbox
    map)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


class DetectionProbe:
    """Runs ModelProtos on prepared input batches and returns their detections."""

    def __init__(
        self, manifest: Manifest, feeds: list[dict[str, np.ndarray]], min_score: float = 0.25
    ) -> None:
        self.manifest = manifest
        self.feeds = feeds
        self.min_score = min_score
        self.runs = 0

    def detections(self, model) -> list[_Dets]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        sess = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in sess.get_outputs()]
        out: list[_Dets] = []
        for feed in self.feeds:
            outputs = dict(zip(names, sess.run(None, feed)))
            out.extend(self._split(outputs))
        self.runs += 1
        return out

    def _split(self, outputs) -> list[_Dets]:
        if self.manifest.output_kind == contract.KIND_RAW:
            from edgedet.nms.host import batched_nms

            res = batched_nms(
                outputs[contract.RAW_BOXES], outputs[contract.RAW_SCORES], self.manifest.nms
            )
            outputs = {
                contract.NUM_DETS: res.num_dets,
                contract.DET_BOXES: res.det_boxes,
                contract.DET_SCORES: res.det_scores,
                contract.DET_CLASSES: res.det_classes,
            }
        dets = []
        for b in range(outputs[contract.NUM_DETS].shape[0]):
            n = int(outputs[contract.NUM_DETS][b, 0])
            scores = outputs[contract.DET_SCORES][b, :n].astype(np.float32)
            keep = np.flatnonzero(scores >= self.min_score)
            dets.append(
                _Dets(
                    outputs[contract.DET_BOXES][b, keep].astype(np.float32),
                    scores[keep],
                    outputs[contract.DET_CLASSES][b, keep].astype(np.int32),
                )
            )
        return dets


def agreement(ref: list[_Dets], got: list[_Dets]) -> dict:
    """Detection agreement of ``got`` with the FP32 reference ``ref`` (see module docstring)."""
    tight, loose = ParityAccumulator(MATCH_IOU), ParityAccumulator(0.5)
    for a, b in zip(ref, got):
        tight.add(a, b)
        loose.add(a, b)
    t, lo = tight.result(), loose.result()
    return {
        "matched": min(t["matched_a"], t["matched_b"]),
        "matched_a": t["matched_a"],
        "matched_b": t["matched_b"],
        "matched_at_0.5": min(lo["matched_a"], lo["matched_b"]),
        "iou_drift": 1.0 - lo["iou"]["mean"],
        "score_drift": lo["score_delta"]["mean"],
        "score_delta_max": lo["score_delta"]["max"],
        "detections_fp32": t["detections_a"],
        "detections_int8": t["detections_b"],
        "images": t["images"],
    }


def quantized_layers(qmodel) -> list[str]:
    """Names of the nodes (Conv/Gemm/MatMul/Add...) that read at least one DequantizeLinear
    output."""
    dq_out = {n.output[0] for n in qmodel.graph.node if n.op_type == "DequantizeLinear"}
    return [
        n.name
        for n in qmodel.graph.node
        if n.op_type in LAYER_OPS and any(i in dq_out for i in n.input)
    ]


def dequantize_layers(qmodel, fp32, names) -> onnx.ModelProto:
    """A copy of ``qmodel`` with no Q/DQ on the inputs of the nodes ``names``: they read the float
    activation and the FP32 weights. Data-movement nodes feeding only such nodes (Concat, Resize,
    MaxPool ... whose inputs carry Q/DQ for TensorRT's INT8 concatenation) lose their Q/DQ too, or
    the fallen-back layer would still read rounded values. Q/DQ pairs other nodes still read stay;
    orphaned ones go, so every remaining QuantizeLinear still feeds only DequantizeLinear."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(qmodel)
    producer = {o: n for n in model.graph.node for o in n.output}
    fp32_nodes = {n.name: n for n in fp32.graph.node}
    fp32_inits = {i.name: i for i in fp32.graph.initializer}
    inits = {i.name for i in model.graph.initializer}
    done: set[str] = set()
    todo = [n for n in model.graph.node if n.name in set(names)]
    while todo:
        node = todo.pop()
        if node.name in done:
            continue
        done.add(node.name)
        for k, tensor in enumerate(node.input):
            dq = producer.get(tensor)
            if dq is not None and dq.op_type == "DequantizeLinear":
                q = producer.get(dq.input[0])
                if q is not None and q.op_type == "QuantizeLinear":
                    # activation (or Constant): the float tensor the pair wrapped
                    node.input[k] = q.input[0]
                else:  # a quantised weight: take the FP32 initializer
                    node.input[k] = fp32_nodes[node.name].input[k]
                    if node.input[k] not in inits:
                        model.graph.initializer.append(fp32_inits[node.input[k]])
                        inits.add(node.input[k])
            src = producer.get(node.input[k])
            if (
                src is not None
                and src.op_type not in LAYER_OPS
                and src.op_type not in ("QuantizeLinear", "DequantizeLinear")
                and not _read_elsewhere(model, node.input[k], done)
            ):
                todo.append(src)  # a data-movement node only fallen-back layers read
    _prune(model)
    return model


def _read_elsewhere(model, tensor: str, done: set[str]) -> bool:
    """Whether a node outside ``done`` (or a graph output) reads ``tensor``, directly or through
    Q/DQ."""
    if tensor in {o.name for o in model.graph.output}:
        return True
    for n in model.graph.node:
        if tensor in n.input:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                if _read_elsewhere(model, n.output[0], done):
                    return True
            elif n.name not in done:
                return True
    return False


def _prune(model) -> None:
    """Drop Q/DQ nodes nobody reads (DQ first, then the Q feeding them) and unused initializers."""
    outputs = {o.name for o in model.graph.output}
    for op in ("DequantizeLinear", "QuantizeLinear"):
        used = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if n.op_type == op and n.output[0] not in used]
        for n in dead:
            model.graph.node.remove(n)
    used = {i for n in model.graph.node for i in n.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)


def sensitivity(
    fp32, qmodel, probe: DetectionProbe, mode: str = "alone", ref=None, progress=None, finish=None
) -> dict:
    """Per-layer agreement, ranked most sensitive first. ``ref``: FP32 detections if already
    computed; ``finish``: the graph that ships from a Q/DQ variant (e.g. its FP16 form), measured
    instead of it.
    """
    finish = finish or (lambda m: m)
    if mode not in MODES:
        raise ValueError(f"sensitivity mode {mode} is not one of {MODES}")
    ref = ref if ref is not None else probe.detections(fp32)
    layers = quantized_layers(qmodel)
    full = agreement(ref, probe.detections(finish(qmodel)))
    ops = {n.name: n.op_type for n in qmodel.graph.node}
    rows = []
    for i, name in enumerate(layers):
        others = [n for n in layers if n != name]
        variant = dequantize_layers(qmodel, fp32, [name] if mode == "exclude" else others)
        row = {
            "layer": name,
            "op_type": ops[name],
            **agreement(ref, probe.detections(finish(variant))),
        }
        # exclude: the gain from falling back this layer; alone: the loss from quantising it
        row["effect"] = (
            (row["matched"] - full["matched"]) if mode == "exclude" else (1.0 - row["matched"])
        )
        rows.append(row)
        if progress:
            progress(i + 1, len(layers))
    rows.sort(key=lambda r: _rank_key(r, mode))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return {
        "mode": mode,
        "match_iou": MATCH_IOU,
        "layers": len(layers),
        "full_int8": full,
        "ranking": rows,
    }


def _rank_key(row: dict, mode: str):
    """Most sensitive first: the matched-fraction effect, then the continuous drifts break ties
    (at one layer the matched fraction often does not move; the box IoU drift still does)."""
    drift = row["iou_drift"] + row["score_drift"]
    return (-round(row["effect"], 6), drift if mode == "exclude" else -drift)


@dataclass
class FallbackResult:
    model: object
    fallback: list[str]
    agreement: dict  # what ``evaluate`` returned for the chosen graph
    history: list[dict]
    met: bool


def fallback_search(
    fp32, qmodel, order: list[str], evaluate, meets, finish=None, max_prune: int = 12
) -> FallbackResult:
    """The shortest prefix of ``order`` (most sensitive first) whose fallback ``meets`` the budget,
    found by doubling then bisecting its length (log2(layers) + a few evaluations instead of one per
    layer); then up to ``max_prune`` of the fallen-back layers, least sensitive first, are
    re-quantised where the budget still holds, so a layer the ranking over-rated does not stay in
    higher precision.

    ``evaluate(model) -> dict`` measures a graph, ``meets(dict) -> bool`` says whether it holds the
    budget; ``finish`` turns each Q/DQ variant into the graph that ships (its FP16 form), so what is
    measured is what is written.
    """
    finish = finish or (lambda m: m)
    history: list[dict] = []
    measured: dict[int, dict] = {}

    def variant(fallen):
        return finish(dequantize_layers(qmodel, fp32, fallen) if fallen else qmodel)

    def note(step, k, result, **extra):
        history.append(
            {
                "step": step,
                "fallback": k,
                **{key: result[key] for key in _HISTORY if key in result},
                **extra,
            }
        )

    def measure(k: int) -> dict:
        if k not in measured:
            measured[k] = evaluate(variant(order[:k]))
            note(f"prefix {k}", k, measured[k])
        return measured[k]

    lo, hi = 0, 1  # invariant once found: prefix lo fails, prefix hi meets the budget
    if meets(measure(0)):
        hi = 0
    else:
        while hi < len(order) and not meets(measure(hi)):
            lo, hi = hi, min(2 * hi, len(order))
        while hi - lo > 1 and meets(measure(hi)):
            mid = (lo + hi) // 2
            if meets(measure(mid)):
                hi = mid
            else:
                lo = mid
    fallen, current = list(order[:hi]), measure(hi)
    met = meets(current)
    if met:
        for name in list(reversed(fallen[:-1]))[:max_prune]:
            trial = [n for n in fallen if n != name]
            result = evaluate(variant(trial))
            note(f"re-quantise {name}", len(trial), result, kept=meets(result))
            if meets(result):
                fallen, current = trial, result
    return FallbackResult(variant(fallen), fallen, current, history, met)


_HISTORY = ("matched", "mAP", "map_drop_pt")


def range_coverage(fp32, qmodel, feeds: list[dict[str, np.ndarray]], calib_feeds=None) -> dict:
    """How well the calibration images stand for the held-out images, per quantised activation.

    clipping   held-out max |x| / INT8 range (128 * scale: beyond it, INT8 is off by over half a
    step), and the fraction of values beyond it;
    shift      (with ``calib_feeds``) the difference of mean |x| between held-out and calibration
               images in units of its image-to-image standard deviation, median over tensors.
    Images like the calibration set keep both small; another domain (lighting, content, scale) moves
    activations and leaves the calibrated ranges too wide (lost resolution) or too narrow
    (clipping).
    """
    import onnx
    from onnx import numpy_helper

    consts = {i.name for i in qmodel.graph.initializer} | {
        o for n in qmodel.graph.node if n.op_type == "Constant" for o in n.output
    }
    scales = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    fp32_tensors = {o for n in fp32.graph.node for o in n.output}
    ranges = {}
    for node in qmodel.graph.node:
        if (
            node.op_type == "QuantizeLinear"
            and node.input[0] not in consts
            and node.input[0] in fp32_tensors
        ):
            # beyond: over half a step off
            ranges[node.input[0]] = 128.0 * float(np.max(scales[node.input[1]]))
    if not ranges:
        return {"tensors": 0}
    probe = onnx.ModelProto()
    probe.CopyFrom(fp32)
    graph_outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
        for t in ranges
        if t not in graph_outputs
    )
    names = list(ranges)
    limit = np.array([ranges[n] for n in names])
    amax, per_image, clipped, total = _activation_stats(probe, names, feeds, limit)
    ratio = amax / limit
    worst = int(ratio.argmax())
    out = {
        "tensors": len(names),
        "images": len(feeds),
        "ratio_median": float(np.median(ratio)),
        "ratio_max": float(ratio.max()),
        "worst_tensor": names[worst],
        "tensors_over_1.5x": float((ratio > 1.5).mean()),
        "clipped_fraction": clipped / max(1, total),
    }
    if calib_feeds:
        _, calib_per_image, _, _ = _activation_stats(probe, names, calib_feeds, limit)
        # effect size: the difference of the mean magnitudes in units of their image-to-image
        # spread, which (unlike a max or a raw ratio) does not drift with how many images each side
        # has
        spread = np.sqrt((per_image.var(0) + calib_per_image.var(0)) / 2) + 1e-12
        shift = np.abs(per_image.mean(0) - calib_per_image.mean(0)) / spread
        out.update(
            {
                "calibration_images": len(calib_feeds),
                "shift_median": float(np.median(shift)),
                "shift_p90": float(np.percentile(shift, 90)),
                "shift_worst_tensor": names[int(shift.argmax())],
            }
        )
    return out


def _activation_stats(model, names, feeds, limit):
    """Max |x| per tensor, mean |x| per (image, tensor), values beyond ``limit``, values seen."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    amax, means = np.zeros(len(names)), []
    clipped = total = 0
    for feed in feeds:
        row = []
        for k, value in enumerate(sess.run(names, feed)):
            a = np.abs(value)
            amax[k] = max(amax[k], float(a.max(initial=0)))
            row.append(float(a.mean(dtype=np.float64)))
            clipped += int((a > limit[k]).sum())
            total += a.size
        means.append(row)
    return amax, np.asarray(means), clipped, total


# Thresholds of the "calibration set looks different" warning, measured with nano calibrated on its
# synthetic images (24 calibration vs 24 held-out): synthetic held-out images shift_median 0.23
# (p90 0.56); the 8 real photos 0.97 (p90 1.95).
SHIFT_MEDIAN = 0.6
SHIFT_CLIPPED_FRACTION = 1e-3


def shift_warning(coverage: dict) -> str | None:
    if not coverage.get("tensors"):
        return None
    if (
        coverage.get("shift_median", 0.0) > SHIFT_MEDIAN
        or coverage["clipped_fraction"] > SHIFT_CLIPPED_FRACTION
    ):
        return (
            "the held-out images look unlike the calibration images: activation magnitudes differ"
            f" by {coverage.get('shift_median', 0.0):.2f} standard deviations (median over"
            f" {coverage['tensors']} quantised tensors) and {coverage['clipped_fraction']:.2%} of"
            " held-out values fall outside the calibrated INT8 ranges; calibrate on images from"
            " where the model will be deployed"
        )
    return None


class MapProbe:
    """mAP@.5:.95 of ModelProtos on a labelled set (COCO JSON or YOLO folder, read by edgedet.eval),
    through the runtime's own Detector: the pre- and post-processing of inference, boxes in image
    pixels.
    """

    def __init__(self, manifest: Manifest, dataset, limit: int | None = None) -> None:
        self.manifest = manifest
        self.dataset = dataset
        self.limit = limit
        self.runs = 0

    def map(self, model) -> dict:
        import copy
        import tempfile
        from pathlib import Path

        import onnx

        import edgedet
        from edgedet.eval.runner import evaluate
        from edgedet.manifest import write_onnx_artifact

        with tempfile.TemporaryDirectory(prefix="edgedet-map-") as tmp:
            path = Path(tmp) / "variant.onnx"
            proto = onnx.ModelProto()
            # the artifact mark is added to what is written, not to the caller's graph
            proto.CopyFrom(model)
            manifest = copy.deepcopy(self.manifest)
            manifest.artifact, manifest.created, manifest.tools = {}, "", {}
            write_onnx_artifact(proto, path, manifest)
            with edgedet.load(path, providers=["cpu"]) as det:
                stats = evaluate(det, self.dataset, self.limit)
        self.runs += 1
        return {"mAP": stats["mAP"], "mAP50": stats["mAP50"], "images": stats["images"]}
