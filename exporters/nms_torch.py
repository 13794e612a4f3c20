"""EdgeDetNMS inside a torch module: eager results from edgedet's host NMS, an EdgeDetNMS node on
export.

Two-stage detectors need NMS in the middle of the network (RPN proposals) with fixed output
shapes. ``edgedet_nms`` runs edgedet's own NMS in eager mode (so parity checks compare like
with like) and, under the TorchScript ONNX exporter, emits one ``edgedet::EdgeDetNMS`` node
carrying the parameters as attributes. ``edgedet.onnx.nms`` then gives every such node its
standard-ops function body (ONNX Runtime) or leaves it for the TensorRT plugin.
"""

from __future__ import annotations

import numpy as np
import torch

from edgedet.nms.opdef import OP_DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION
from edgedet.nms.params import NMSParams


def node_attributes(params: NMSParams) -> dict:
    """NMSParams -> the EdgeDetNMS node attributes (TorchScript g.op suffix style: _f float, _i int,
    _s str)."""
    return {
        "score_threshold_f": float(params.score_threshold),
        "iou_threshold_f": float(params.iou_threshold),
        "max_output_boxes_i": int(params.max_output_boxes),
        "top_k_i": int(params.top_k),
        "background_class_i": int(params.background_class),
        "score_activation_i": int(params.score_activation),
        "class_agnostic_i": int(params.class_agnostic),
        "box_coding_i": int(params.box_coding),
        "box_scale_f": [float(s) for s in params.box_scale],
        "plugin_version_s": PLUGIN_VERSION,
        "plugin_namespace_s": PLUGIN_NAMESPACE,
    }


class _EdgeDetNMS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, boxes, scores, params: NMSParams):
        from edgedet.nms.host import batched_nms

        res = batched_nms(
            boxes.detach().cpu().float().numpy(), scores.detach().cpu().float().numpy(), params
        )
        return (
            torch.from_numpy(np.ascontiguousarray(res.num_dets)).to(boxes.device),
            torch.from_numpy(np.ascontiguousarray(res.det_boxes)).to(boxes.device),
            torch.from_numpy(np.ascontiguousarray(res.det_scores)).to(boxes.device),
            torch.from_numpy(np.ascontiguousarray(res.det_classes)).to(boxes.device),
        )

    @staticmethod
    def symbolic(g, boxes, scores, params: NMSParams):
        outs = g.op(f"{OP_DOMAIN}::{OP_TYPE}", boxes, scores, outputs=4, **node_attributes(params))
        batch = _sizes(boxes)[0]
        k = params.max_output_boxes
        for out, dtype, shape in zip(
            outs,
            ("Int", "Float", "Float", "Int"),
            ([batch, 1], [batch, k, 4], [batch, k], [batch, k]),
        ):
            base = scores.type() if dtype == "Float" else scores.type().with_dtype(torch.int32)
            out.setType(base.with_sizes(shape))
        return outs


def _sizes(value) -> list:
    try:
        return value.type().sizes() or [None]
    except RuntimeError:
        return [None]


def edgedet_nms(boxes: torch.Tensor, scores: torch.Tensor, params: NMSParams):
    """boxes [B, N, 4] or [B, N, C, 4] xyxy, scores [B, N, C] -> (num_dets [B,1] int32, det_boxes
    [B,K,4],
    det_scores [B,K], det_classes [B,K] int32), padded with zeros past num_dets."""
    return _EdgeDetNMS.apply(boxes, scores, params)
