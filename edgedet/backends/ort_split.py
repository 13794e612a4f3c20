"""EdgeDetNMS on ONNX Runtime at host-NMS speed: run the graph in slices and the NMS on the host.

An exported model carries each NMS as one ``edgedet::EdgeDetNMS`` node whose model-local function
(standard ONNX ops) is what ONNX Runtime would otherwise execute. That body costs several times
more than :func:`edgedet.nms.host.batched_nms` on the same tensors (benchmarks/e2e.py), and the two
agree bit for bit wherever no ``exp`` is involved (tests/nms). So at load time the graph is cut at
its EdgeDetNMS nodes, in memory (the file does not change):

    slice 0 (ORT session) -> EdgeDetNMS (host) -> slice 1 (ORT session) -> EdgeDetNMS (host) -> ...

A node's slice is the number of EdgeDetNMS nodes on its deepest input path, so a two-stage R-CNN
(RPN NMS -> RoI heads -> final NMS) becomes two sessions and two host NMS steps; a later slice takes
the tensors it needs from earlier slices (R-CNN's FPN features) as inputs. Each NMS step reads the
node's attributes (the NMSParams fields) and, when the node has them, its run-time threshold inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgedet.backends import onnx_wire as wire
from edgedet.backends.base import IOSpec
from edgedet.errors import ModelError
from edgedet.nms.host import batched_nms
from edgedet.nms.opdef import HAS_ANCHORS, OP_DOMAIN, OP_TYPE, THRESHOLD_INPUTS
from edgedet.nms.params import NMSParams

# EdgeDetNMS attributes = NMSParams fields
_PARAM_FIELDS = {f.name for f in dataclasses.fields(NMSParams)}
_ORT_TO_ONNX = {
    "tensor(float)": 1,
    "tensor(uint8)": 2,
    "tensor(int8)": 3,
    "tensor(int32)": 6,
    "tensor(int64)": 7,
    "tensor(bool)": 9,
    "tensor(float16)": 10,
    "tensor(double)": 11,
}
_ONNX_TO_NP = {1: np.float32, 2: np.uint8, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16}
INT32 = 6


def is_nms(node) -> bool:
    return node.op_type == OP_TYPE and node.domain == OP_DOMAIN


def nms_params(node) -> NMSParams:
    """The NMSParams an EdgeDetNMS node carries (attributes absent from the node take the
    defaults)."""
    values = {k: v for k, v in node.attributes.items() if k in _PARAM_FIELDS}
    for flag in ("score_activation", "class_agnostic"):
        if flag in values:
            values[flag] = bool(values[flag])
    if "box_scale" in values:
        values["box_scale"] = tuple(values["box_scale"])
    return NMSParams(**values)


def positional_inputs(node) -> list[str]:
    """[boxes, scores, anchors, score_threshold, iou_threshold] with "" for an absent one. Nodes
    state which optional inputs follow (has_anchors, threshold_inputs: contiguous inputs); older
    files without those attributes were positional with "" gaps."""
    names = list(node.inputs)
    if HAS_ANCHORS not in node.attributes or THRESHOLD_INPUTS not in node.attributes:
        return names + [""] * (5 - len(names))
    anchors, thresholds = int(node.attributes[HAS_ANCHORS]), int(node.attributes[THRESHOLD_INPUTS])
    rest = names[2:]
    anchor = rest.pop(0) if anchors else ""
    return names[:2] + [anchor] + rest[:thresholds] + [""] * (2 - thresholds)


@dataclass
class Slice:
    """Consecutive standard-op nodes run as one ONNX Runtime session."""

    session: object
    inputs: list[str]
    outputs: list[str]

    def run(self, store: dict) -> None:
        values = self.session.run(self.outputs, {name: store[name] for name in self.inputs})
        store.update(zip(self.outputs, values))


@dataclass
class HostNMS:
    """One EdgeDetNMS node run by edgedet.nms.host, with the function body's output types."""

    # positional: boxes, scores[, anchors][, score_threshold, iou_threshold]; "" = absent
    inputs: list[str]
    outputs: list[str]  # num_dets, det_boxes, det_scores, det_classes
    params: NMSParams

    def __post_init__(self) -> None:
        # resolved once, not per call: the step should cost what batched_nms costs
        # (benchmarks/e2e.py)
        boxes, scores, anchors, score_thr, iou_thr = (self.inputs + [""] * 5)[:5]
        self._boxes, self._scores, self._anchors = boxes, scores, anchors
        self._thresholds = [
            (n, k) for n, k in ((score_thr, "score_threshold"), (iou_thr, "iou_threshold")) if n
        ]
        self._outputs = [(i, n) for i, n in enumerate(self.outputs) if n]

    def arrays(self, store: dict) -> tuple:
        """(boxes, scores, anchors or None): this node's NMS inputs in ``store``."""
        return (
            store[self._boxes],
            store[self._scores],
            store[self._anchors] if self._anchors else None,
        )

    def run(self, store: dict) -> None:
        params = self.params
        if self._thresholds:  # run-time thresholds (float32 [1]) replace the attributes
            params = params.replace(
                **{k: float(np.asarray(store[n]).reshape(-1)[0]) for n, k in self._thresholds}
            )
        boxes, scores, anchors = self.arrays(store)
        res = batched_nms(boxes, scores, params, anchors=anchors)
        # the function body returns boxes/scores in the type of `scores` (CastLike) and int32
        # counts/classes
        values = (res.num_dets, res.det_boxes, res.det_scores, res.det_classes)
        for i, name in self._outputs:
            store[name] = values[i].astype(scores.dtype, copy=False) if i in (1, 2) else values[i]


class SplitModel:
    """A model with EdgeDetNMS nodes as ORT slices and host NMS steps; ``run(feed)`` -> graph
    outputs.

    ``make_session(model_bytes)`` creates an ONNX Runtime session (the caller's options/providers).
    """

    def __init__(self, model: wire.Model, make_session) -> None:
        graph = model.graph
        self.output_names = [name for name, _ in graph.outputs]
        levels = _levels(graph.nodes, graph.initializers)
        needed = _needed_later(graph.nodes, levels, self.output_names)
        # name -> (elem type, dims)
        types = {name: wire.value_info_type(raw) for name, raw in graph.inputs}
        self.constants = {}  # initializers an NMS node reads directly (anchors)
        self.steps: list = []
        for level in range(max(levels, default=0) + 1):
            part = [n for n, lv in zip(graph.nodes, levels) if lv == level and not is_nms(n)]
            if part:
                self.steps.append(_make_slice(model, part, needed[level], types, make_session))
            for node in (n for n, lv in zip(graph.nodes, levels) if lv == level and is_nms(n)):
                ins = positional_inputs(node)
                self.constants.update(
                    {
                        n: wire.tensor_value(graph.initializers[n])
                        for n in ins
                        if n in graph.initializers
                    }
                )
                p = nms_params(node)
                t, shape = types.get(ins[1], (1, None))
                b, k = (shape[0] if shape else None), p.max_output_boxes
                types.update(
                    zip(
                        node.outputs,
                        ((INT32, [b, 1]), (t, [b, k, 4]), (t, [b, k]), (INT32, [b, k])),
                    )
                )
                self.steps.append(HostNMS(ins, list(node.outputs), p))
        self.nms_steps = sum(isinstance(s, HostNMS) for s in self.steps)
        self.specs = (
            [_spec(name, raw) for name, raw in graph.inputs if name not in graph.initializers],
            [_spec(name, raw) for name, raw in graph.outputs],
        )

    def run(self, feed: dict) -> list[np.ndarray]:
        store = {**self.constants, **feed}
        for step in self.steps:
            step.run(store)
        return [store[name] for name in self.output_names]


def _spec(name: str, raw: bytes) -> IOSpec:
    """IOSpec of a graph input/output ValueInfoProto (symbolic or unknown dims -> None)."""
    elem, dims = wire.value_info_type(raw)
    dtype = _ONNX_TO_NP.get(elem)
    if dtype is None:
        raise ModelError(
            f"tensor '{name}' has ONNX element type {elem}, which edgedet does not handle"
        )
    return IOSpec(name, np.dtype(dtype), tuple(d if d else None for d in dims or ()))


def _dims(shape) -> list | None:
    """ORT's inferred shape (ints, symbolic names, None) as value_info takes it."""
    if shape is None:
        return None
    return [
        d if isinstance(d, (int, str)) and not (isinstance(d, int) and d < 0) else None
        for d in shape
    ]


def _levels(nodes: list, initializers) -> list[int]:
    """Slice index of every node (graph order is topological): EdgeDetNMS nodes on the deepest input
    path."""
    tensor_level: dict[str, int] = {}
    levels: list[int] = []
    for node in nodes:
        lv = max((tensor_level.get(n, 0) for n in node.reads if n not in initializers), default=0)
        levels.append(lv)
        for out in node.outputs:
            tensor_level[out] = lv + 1 if is_nms(node) else lv
    return levels


def _needed_later(nodes, levels, graph_outputs) -> dict[int, set]:
    """For each slice: tensors read after it (by its NMS steps, later slices) or returned by the
    graph."""
    top = max(levels, default=0)
    needed = {lv: set(graph_outputs) for lv in range(top + 1)}
    for node, level in zip(nodes, levels):
        reader = level + (0 if is_nms(node) else -1)  # NMS at level L reads after slice L
        for lv in range(0, reader + 1):
            needed[lv].update(node.reads)
    return needed


def _make_slice(model: wire.Model, part, needed, types, make_session) -> Slice:
    graph = model.graph
    produced = [o for n in part for o in n.outputs if o]
    produced_set = set(produced)
    reads = list(dict.fromkeys(n for node in part for n in node.reads))
    inputs = [n for n in reads if n not in produced_set and n not in graph.initializers]
    graph_inputs = dict(graph.inputs)
    # shapes let ORT plan the later slices as it plans the whole graph (unknown shapes cost R-CNN's
    # RoI heads)
    in_info = [
        graph_inputs[n] if n in graph_inputs else wire.value_info(n, *types[n]) for n in inputs
    ]
    outputs = [o for o in produced if o in needed]
    out_info = [wire.value_info(o) for o in outputs]  # ORT infers the types
    used_inits = [graph.initializers[n] for n in reads if n in graph.initializers]
    data = wire.serialize(
        model,
        f"{graph.name}_slice",
        part,
        used_inits,
        in_info,
        out_info,
        keep_function=lambda domain, name: not (name == OP_TYPE and domain == OP_DOMAIN),
    )
    session = make_session(data)
    types.update(
        (o.name, (_ORT_TO_ONNX.get(o.type, 1), _dims(o.shape))) for o in session.get_outputs()
    )
    return Slice(session, inputs, outputs)
