"""Tiny detectors exported the way third-party tools export theirs (torch needed).

Each builder returns ``(module, onnx.ModelProto)``; ``module.reference(x)`` gives the decoded
(boxes xyxy in input pixels [1, N, 4], class probabilities [1, N, C]) the tool's own
post-processing would compute, so a test can check attach-nms against it. The quirks are those
of real exports (issue 14):

- ``ultralytics_like``: input ``images``, one output ``output0`` [1, 4+C, N] (cxcywh pixels, probs).
- ``face_ssd``: an SSD-style face detector (Ultra-Light-Fast-Generic-Face-Detector style): input
  ``input`` [1, 3, H, W] non-square, outputs named ``scores`` [1, N, 2] (softmax, background in
  column 0) and ``boxes`` [1, N, 4] (normalised xyxy), opset 9, initialisers listed as graph
  inputs, a batch-dependent Reshape so ONNX shape inference cannot know the intermediate dims,
  shapes declared only on the graph outputs.
- ``yolov5_fp16``: a ``--half`` export: FP16 input ``images``, FP16 output [1, N, 5+C].
- ``yolox_raw``: YOLOX exported without ``decode_in_inference``: [1, N, 5+C] with raw grid
  offsets and log sizes per stride (8, 16, 32), objectness and class scores already sigmoid.
- ``face_ssd_deltas``: the SSD face head exporting box deltas against prior boxes (``priors()``).
- ``ltrb_raw``: a YOLOv6/v8-style raw head, (l, t, r, b) in stride units from cell centres.
- ``logit_head``: boxes in pixels and class logits (sigmoid not applied).
- ``end2end_yolo``: an end-to-end head (YOLO26/YOLOv10 ``end2end``): ``output0`` [1, K, 6] final
rows.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import onnx
import torch

C = 3  # classes of the generated models


class _Features(torch.nn.Module):
    """Per-stride feature maps of the image (average pools + a 1x1 conv): cheap, input-dependent."""

    def __init__(self, strides, out_channels, in_scale=1.0):
        super().__init__()
        self.strides = strides
        self.in_scale = in_scale
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3, out_channels, 1) for _ in strides)

    def forward(self, x):
        x = x * self.in_scale
        return [
            conv(torch.nn.functional.avg_pool2d(x, s, s))
            for s, conv in zip(self.strides, self.convs)
        ]


def _cells(h, w, strides):
    """Grid cell offsets [N, 2] (x, y) and strides [N, 1] in the order YOLOX/YOLOv8 flatten them."""
    grids, sizes = [], []
    for s in strides:
        yv, xv = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        grids.append(np.stack([xv, yv], -1).reshape(-1, 2))
        sizes.append(np.full((grids[-1].shape[0], 1), s))
    return (
        torch.from_numpy(np.concatenate(grids)).float(),
        torch.from_numpy(np.concatenate(sizes)).float(),
    )


class GridHead(torch.nn.Module):
    """Anchor-free grid head shared by the YOLO-style builders: raw (dx, dy, log w, log h, obj,
    cls)."""

    def __init__(self, h, w, strides=(8, 16, 32), in_scale=1.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = _Features(strides, 5 + C, in_scale)
        grid, stride = _cells(h, w, strides)
        self.register_buffer("grid", grid)
        self.register_buffer("stride", stride)

    def raw(self, x):
        return torch.cat([f.flatten(2) for f in self.features(x)], 2).transpose(1, 2)  # [1, N, 5+C]

    def decoded(self, x):
        """(cxcywh pixels, objectness, class probs) the way YOLOX decodes its raw output."""
        r = self.raw(x)
        xy = (torch.tanh(r[..., :2]) + 0.5 + self.grid) * self.stride
        wh = torch.exp(torch.tanh(r[..., 2:4]) * 1.5) * self.stride
        return (
            torch.cat([xy, wh], -1),
            torch.sigmoid(r[..., 4:5] * 4),
            torch.sigmoid(r[..., 5:] * 4 - 1),
        )

    def prep(self, x):
        """The model input for an RGB 0..1 image tensor (Ultralytics / YOLOv5: RGB 0..1)."""
        return x

    def reference(self, x):
        cxcywh, obj, cls = self.decoded(self.prep(x))
        return _xyxy(cxcywh), cls


def _xyxy(cxcywh):
    return torch.cat(
        [cxcywh[..., :2] - cxcywh[..., 2:] / 2, cxcywh[..., :2] + cxcywh[..., 2:] / 2], -1
    )


class UltralyticsLike(GridHead):
    def forward(self, x):
        cxcywh, _, cls = self.decoded(x)
        return torch.cat([cxcywh, cls], -1).transpose(1, 2)  # [1, 4+C, N]


class Yolov5Like(GridHead):
    def forward(self, x):
        cxcywh, obj, cls = self.decoded(x)
        return torch.cat([cxcywh, obj, cls], -1)  # [1, N, 5+C]

    def reference(self, x):
        cxcywh, obj, cls = self.decoded(self.prep(x))
        return _xyxy(cxcywh), cls * obj


class YoloxRaw(GridHead):
    """YOLOX's raw output: the decode (grid offset, exp(wh) * stride) is left to the user; the
    model takes BGR 0..255 (YOLOX's own pre-processing: no mean/std, top-left padding)."""

    def __init__(self, h, w):
        super().__init__(h, w, in_scale=1.0 / 255)

    def prep(self, x):
        return x.flip(1) * 255.0

    def forward(self, x):
        r = self.raw(x)
        _, obj, cls = self.decoded(x)
        return torch.cat(
            [torch.tanh(r[..., :2]) + 0.5, torch.tanh(r[..., 2:4]) * 1.5, obj, cls], -1
        )

    def reference(self, x):
        cxcywh, obj, cls = self.decoded(self.prep(x))
        return _xyxy(cxcywh), cls * obj


class LtrbRaw(GridHead):
    """YOLOv6/v8-style anchor-free head after the DFL integral: (l, t, r, b) distances in stride
    units from the cell centre, then class probabilities: [1, N, 4+C]."""

    def forward(self, x):
        r = self.raw(x)
        return torch.cat([torch.exp(torch.tanh(r[..., :4])), torch.sigmoid(r[..., 5:])], -1)

    def reference(self, x):
        r = self.raw(self.prep(x))
        centre = (self.grid + 0.5) * self.stride
        d = torch.exp(torch.tanh(r[..., :4])) * self.stride
        return torch.cat([centre - d[..., :2], centre + d[..., 2:]], -1), torch.sigmoid(r[..., 5:])


class LogitHead(GridHead):
    """Pixel xyxy boxes ``bx`` [1, N, 4] and raw class logits ``logits`` [1, N, C] (sigmoid left to
    the user)."""

    def forward(self, x):
        cxcywh, _, _ = self.decoded(x)
        return _xyxy(cxcywh), self.raw(x)[..., 5:] * 4


class FaceSSD(torch.nn.Module):
    """SSD-style face detector: takes (pixels - 127) / 128 (normalised by the user's code, not in
    the graph), softmax over (background, face), normalised xyxy boxes."""

    def __init__(self, h, w, strides=(8, 16), seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.h, self.w = h, w
        self.features = _Features(strides, 6, 1.0)

    def prep(self, x):
        return (x * 255.0 - 127.0) / 128.0

    def forward(self, x):
        f = torch.cat([t.flatten(2) for t in self.features(x)], 2).permute(0, 2, 1)
        f = f.reshape(x.size(0), -1, 6)  # batch-dependent Reshape: shape inference loses N here
        scores = torch.softmax(f[..., 4:] * 4, -1)
        c = torch.sigmoid(f[..., :2] * 2)
        half = torch.sigmoid(f[..., 2:4]) * 0.3 + 0.02
        return scores, torch.cat([c - half, c + half], -1)  # normalised xyxy

    def reference(self, x):
        scores, boxes = self.forward(self.prep(x))
        return (
            boxes * torch.tensor([self.w, self.h, self.w, self.h], dtype=boxes.dtype),
            scores[..., 1:],
        )


class FaceSSDDeltas(FaceSSD):
    """The same SSD face head exporting box deltas against its priors (decode left to the user's
    code:
    centre variance 0.1, size variance 0.2)."""

    def priors(self):
        """[N, 4] (cx, cy, w, h) normalised, cell by cell, level after level."""
        out = []
        for s in self.features.strides:
            fh, fw = self.h // s, self.w // s
            ys, xs = np.mgrid[0:fh, 0:fw]
            out.append(
                np.stack(
                    [
                        (xs.ravel() + 0.5) / fw,
                        (ys.ravel() + 0.5) / fh,
                        np.full(xs.size, 2 * s / self.w),
                        np.full(xs.size, 2 * s / self.h),
                    ],
                    1,
                )
            )
        return np.concatenate(out).astype(np.float32)

    def forward(self, x):
        f = torch.cat([t.flatten(2) for t in self.features(x)], 2).permute(0, 2, 1)
        # trained deltas are roughly zero-mean and independent per coordinate; this 1x1-conv head's
        # features are not, so spread them (input-dependent, deterministic)
        d = torch.sin(f[..., :4] * 40 + torch.arange(4.0)) * 1.5
        return torch.softmax(f[..., 4:] * 4, -1), d  # scores, deltas

    def reference(self, x):
        scores, d = self.forward(self.prep(x))
        p = torch.from_numpy(self.priors())
        c = p[:, :2] + d[..., :2] * 0.1 * p[:, 2:]
        wh = p[:, 2:] * torch.exp(d[..., 2:] * 0.2)
        box = torch.cat([c - wh / 2, c + wh / 2], -1)
        return (
            box * torch.tensor([self.w, self.h, self.w, self.h], dtype=box.dtype),
            scores[..., 1:],
        )


class EndToEndYolo(torch.nn.Module):
    """A YOLO-style dense head (64 anchors) with the end-to-end post-processing Ultralytics'
    v10Detect / YOLO26 heads export: top max_det anchors by best class, then top max_det (anchor,
    class) pairs, rows (x1, y1, x2, y2, score, class) in input pixels."""

    def __init__(self, layout="ultralytics", size=64, num_classes=4, max_det=30):
        super().__init__()
        self.size, self.nc, self.max_det = size, num_classes, max_det
        torch.manual_seed(0)
        self.layout = layout
        self.conv = torch.nn.Conv2d(3, 4 + num_classes, 8, 8)

    def forward(self, images):
        f = self.conv(images * 4 - 2).flatten(2).transpose(1, 2)  # [1, 64, 4+C]
        xy, wh = torch.sigmoid(f[..., :2]) * self.size, torch.sigmoid(f[..., 2:4]) * 24 + 2
        boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
        scores = torch.sigmoid(f[..., 4:] * 3 - 3)
        best, index = torch.topk(scores.amax(-1), self.max_det, dim=-1)
        boxes = boxes.gather(1, index.unsqueeze(-1).repeat(1, 1, 4))
        scores = scores.gather(1, index.unsqueeze(-1).repeat(1, 1, self.nc))
        scores, flat = torch.topk(scores.flatten(1), self.max_det, dim=-1)
        labels, rows = flat % self.nc, flat // self.nc
        boxes = boxes.gather(1, rows.unsqueeze(-1).repeat(1, 1, 4))
        if self.layout == "class-first":
            return torch.cat([boxes, labels.unsqueeze(-1).float(), scores.unsqueeze(-1)], -1)
        if self.layout == "mmdeploy":
            return torch.cat([boxes, scores.unsqueeze(-1)], -1), labels
        return torch.cat([boxes, scores.unsqueeze(-1), labels.unsqueeze(-1).float()], -1)


def _export(module, x, input_name, output_names, opset=17, keep_inits=False, dynamic_batch=False):
    buf = io.BytesIO()
    axes = {input_name: {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(
        module.eval(),
        (x,),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=[input_name],
        output_names=output_names,
        keep_initializers_as_inputs=keep_inits,
        dynamic_axes=axes,
    )
    return onnx.load_from_string(buf.getvalue())


def _cached(build):
    """Export once per process; every call gets its own ModelProto (attach-nms edits in place)."""
    cache = {}

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in cache:
            module, model = build(*args, **kwargs)
            cache[key] = (module, model.SerializeToString())
        module, data = cache[key]
        return module, onnx.load_from_string(data)

    return wrapper


@_cached
def ultralytics_like(h=64, w=64):
    m = UltralyticsLike(h, w)
    return m, _export(m, torch.rand(1, 3, h, w), "images", ["output0"])


@_cached
def end2end_yolo(h=64, w=64):
    """Ultralytics' end2end export (YOLO26 / YOLOv10): ``images`` -> ``output0`` [1, 30, 6]."""
    m = EndToEndYolo(size=h)
    model = _export(m, torch.rand(1, 3, h, w), "images", ["output0"])
    onnx.helper.set_model_props(
        model, {"names": str({i: f"class{i}" for i in range(m.nc)}), "task": "detect"}
    )
    return m, model


@_cached
def yolov5_fp16(h=64, w=64):
    m = Yolov5Like(h, w)
    model = _export(m.half(), torch.rand(1, 3, h, w).half(), "images", ["output0"])
    return m.float(), model


@_cached
def yolox_raw(h=64, w=64):
    m = YoloxRaw(h, w)
    return m, _export(m, torch.rand(1, 3, h, w) * 255, "images", ["output"])


@_cached
def ltrb_raw(h=64, w=64):
    m = LtrbRaw(h, w)
    return m, _export(m, torch.rand(1, 3, h, w), "images", ["output"])


@_cached
def logit_head(h=64, w=64):
    m = LogitHead(h, w)
    return m, _export(m, torch.rand(1, 3, h, w), "images", ["bx", "logits"])


@_cached
def face_ssd(h=48, w=64):
    """Opset 9, initialisers as inputs, unknown intermediate dims, shapes only on the outputs."""
    m = FaceSSD(h, w)
    model = _export(
        m,
        torch.randn(1, 3, h, w),
        "input",
        ["scores", "boxes"],
        opset=9,
        keep_inits=True,
        dynamic_batch=True,
    )
    del model.graph.value_info[:]
    n = sum((h // s) * (w // s) for s in m.features.strides)
    for out, k in zip(model.graph.output, (2, 4)):  # the old exporter declared static output shapes
        dims = out.type.tensor_type.shape.dim
        for d, v in zip(dims, (1, n, k)):
            d.Clear()
            d.dim_value = v
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].Clear()
    dims[0].dim_value = 1
    return m, model


@_cached
def face_ssd_deltas(h=48, w=64):
    m = FaceSSDDeltas(h, w)
    return m, _export(m, torch.randn(1, 3, h, w), "input", ["scores", "boxes"])
