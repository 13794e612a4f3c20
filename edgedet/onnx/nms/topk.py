"""Score threshold + top-k from standard ONNX ops: the contract outputs of an end-to-end head (no
NMS).

Same function as edgedet.nms.topk.select_topk (docs/nms.md, "End-to-end heads"), bit for bit:
  boxes [B,N,4] --decode/canonicalise (graph.decode)--> corners
  scores [B,N,C] --sigmoid?/NaN/background (graph.prepare_scores)--> Reshape [B,N*C] --TopK M-->
      values, flat index (ONNX TopK: sorted, ties by lower index, the spec's rank rule);
      M = min(K, N*C)
  valid = value > score_threshold: a prefix of the sorted rows, so num_dets = ReduceSum(valid)
  gather boxes / classes (index % C, or labels[n]), zero the rest, pad the K axis when M < K.
M is bounded by TensorRT's TopK limit (edgedet.nms.topk.TRT_MAX_TOPK). The score threshold may be a
graph input (float32 [1]) so it changes at run time, as for EdgeDetNMS.
"""

from __future__ import annotations

import numpy as np

from edgedet import contract
from edgedet.errors import ExportError, InputError
from edgedet.nms.params import NMSParams
from edgedet.nms.topk import TRT_MAX_TOPK
from edgedet.onnx.builder import NodeBuilder
from edgedet.onnx.nms.body import Knobs, decode, prepare_scores


def build_topk(
    b: NodeBuilder,
    boxes: str,
    scores: str,
    params: NMSParams,
    n: int,
    c: int,
    labels: str | None = None,
    score_threshold: str | None = None,
) -> dict[str, str]:
    """Append the selection nodes; returns tensor names of num_dets, det_boxes, det_scores,
    det_classes.

    ``boxes`` [B,N,4] and ``scores`` [B,N,C] float32 (``labels`` int64 [B,N] with C = 1);
    ``score_threshold`` names a float32 [1] graph input, None bakes params.score_threshold in."""
    k = params.max_output_boxes
    m = min(k, n * c)
    if m > TRT_MAX_TOPK:
        raise ExportError(
            f"{m} detections per image is more than TensorRT's TopK allows ({TRT_MAX_TOPK}); "
            f"set --max-det <= {TRT_MAX_TOPK}"
        )
    knobs = Knobs.static(
        params.replace(background_class=-1 if labels is not None else params.background_class)
    )
    corners = decode(b, boxes, None, knobs)
    s = prepare_scores(b, scores, knobs, c)
    if labels is not None and params.background_class >= 0:
        bg = b.op("Equal", [labels, b.const(np.int64(params.background_class))])
        s = b.op("Where", [b.unsqueeze(bg, [-1]), b.const(np.float32(-np.inf), np.float32), s])
    flat = b.op("Reshape", [s, b.const([0, -1])])
    values, index = b.op("TopK", [flat, b.const([m])], outputs=2, axis=-1, largest=1, sorted=1)
    anchor = b.op("Div", [index, b.const(c)]) if c > 1 else index
    cls = (
        b.op("GatherElements", [labels, anchor], axis=1)
        if labels is not None
        else b.op("Mod", [index, b.const(c)])
    )
    thr = score_threshold or b.const(np.float32(params.score_threshold), np.float32)
    valid = b.op("Greater", [values, thr])  # [B,M]
    zero_f, zero_i = b.const(np.float32(0), np.float32), b.const(np.int32(0), np.int32)
    picked = b.op("GatherND", [corners, b.unsqueeze(anchor, [-1])], batch_dims=1)  # [B,M,4]
    out = {
        contract.NUM_DETS: b.op(
            "ReduceSum", [b.op("Cast", [valid], to=6), b.const([1])], keepdims=1
        ),
        contract.DET_BOXES: b.op("Where", [b.unsqueeze(valid, [-1]), picked, zero_f]),
        contract.DET_SCORES: b.op("Where", [valid, values, zero_f]),
        contract.DET_CLASSES: b.op("Where", [valid, b.op("Cast", [cls], to=6), zero_i]),
    }
    if k > m:  # fewer candidates than outputs: pad the K axis
        for name, fill in (
            (contract.DET_BOXES, zero_f),
            (contract.DET_SCORES, zero_f),
            (contract.DET_CLASSES, zero_i),
        ):
            r = 3 if name == contract.DET_BOXES else 2
            out[name] = b.op(
                "Pad", [out[name], b.const([0] * r + [0, k - m] + [0] * (r - 2)), fill]
            )
    return out


def attach_topk(
    model,
    params: NMSParams,
    boxes: str = contract.RAW_BOXES,
    scores: str = contract.RAW_SCORES,
    labels: str | None = None,
    runtime_threshold: bool = False,
):
    """Return a copy of ``model`` whose outputs are exactly the four contract outputs, selected by
    score threshold + top-k from its raw outputs ``boxes`` [B,N,4], ``scores`` [B,N,C] (and
    ``labels`` [B,N]). ``runtime_threshold`` adds the graph input score_threshold (float32 [1])."""
    import onnx
    from onnx import helper

    from edgedet.onnx.nms import MIN_OPSET, _dims, contract_output_infos
    from edgedet.onnx.tools import opset_of

    if not isinstance(params, NMSParams):
        raise InputError(f"attach_topk needs NMSParams, got {type(params).__name__}")
    if opset_of(model) < MIN_OPSET:
        raise ExportError(
            f"the selection graph needs opset >= {MIN_OPSET}; the model is opset {opset_of(model)}"
        )
    out = onnx.ModelProto()
    out.CopyFrom(model)
    types = {o.name: o.type.tensor_type for o in out.graph.output}
    for name in (boxes, scores) + ((labels,) if labels else ()):
        if name not in types:
            raise ExportError(
                f"the graph has no '{name}' output to select detections from (outputs:"
                f" {sorted(types)})"
            )
    bshape, sshape = _dims(types[boxes]), _dims(types[scores])
    if len(sshape) != 3 or not all(isinstance(d, int) and d > 0 for d in sshape[1:]):
        raise ExportError(
            f"'{scores}' has shape {sshape}; the selection needs [B, N, C] with static N, C"
        )
    n, c = sshape[1], sshape[2]
    if bshape[1:] != [n, 4]:
        raise ExportError(
            f"'{boxes}' has shape {bshape}; with '{scores}' {sshape} it must be [B, {n}, 4]"
        )
    if labels and (c != 1 or _dims(types[labels])[1:] != [n]):
        raise ExportError(
            f"with labels '{labels}' {_dims(types[labels])} the scores must be [B, {n}, 1], got"
            f" {sshape}"
        )
    b = NodeBuilder("topk/")
    bx, sc = b.as_float(boxes, types[boxes].elem_type), b.as_float(scores, types[scores].elem_type)
    lab = None
    if labels:
        lab = (
            labels
            if types[labels].elem_type == onnx.TensorProto.INT64
            else b.op("Cast", [labels], to=onnx.TensorProto.INT64)
        )
    thr = None
    if runtime_threshold:
        threshold_input = helper.make_tensor_value_info(
            contract.SCORE_THRESHOLD_INPUT, onnx.TensorProto.FLOAT, [1]
        )
        out.graph.input.append(threshold_input)
        thr = contract.SCORE_THRESHOLD_INPUT
    produced = build_topk(b, bx, sc, params, n, c, lab, thr)
    out.graph.node.extend(b.nodes)
    for name in contract.NMS_OUTPUTS:
        out.graph.node.append(
            helper.make_node("Identity", [produced[name]], [name], name=f"topk/{name}")
        )
    keep = [o for o in out.graph.output if o.name not in (boxes, scores, labels)]
    del out.graph.output[:]
    out.graph.output.extend(keep)
    out.graph.output.extend(contract_output_infos(sshape[0], params.max_output_boxes))
    return out
