"""NanoDet: edgedet's built-in anchor-free detector (320x320, about 1 M parameters).

Parts, each a small module:

- ``Backbone``: a stem of two stride-2 3x3 convs, then CSP stages of 3x3 conv + BN + ReLU
  residual blocks; features at strides 4/8/16/32.
- ``PAN``: top-down then bottom-up fusion (nearest upsampling, strided conv, add) to ``neck``
  channels at strides 8/16/32, with the stride-4 features folded into stride 8.
- ``Head``: per level, a decoupled classification tower and regression tower; the regression
  output is a distribution over ``reg_max`` bins per box side (DFL, as in GFL / YOLOv8).
- ``decode``: DFL expectation (softmax + fixed 1x1 conv) and grid/stride decode from buffers.

Eval mode returns edgedet's raw contract: ``boxes`` [B, N, 4] (x1, y1, x2, y2) in input pixels
and ``scores`` [B, N, C] sigmoid probabilities, N = 40*40 + 20*20 + 10*10 = 2100 at 320.
Only Conv, BatchNorm (folded by :meth:`NanoDet.fuse` or the ONNX exporter), ReLU, Resize
(nearest), Add, Mul, Concat, Reshape, Transpose, Softmax and Sigmoid appear; shapes are fixed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDES = (8, 16, 32)
REG_MAX = 16  # bins per side: distances 0..15 strides (up to 480 px at stride 32)
# ImageNet statistics; the model takes 0..1 RGB and normalises inside the graph.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + ReLU; 'same' padding for odd kernels."""

    def __init__(
        self, c_in: int, c_out: int, k: int = 3, s: int = 1, act: bool = True, p: int | None = None
    ) -> None:
        layers = [
            nn.Conv2d(c_in, c_out, k, s, k // 2 if p is None else p, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if act else []))


class ResBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut (ResNet basic block)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(c, c)
        self.conv2 = ConvBNAct(c, c, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


class CSPStage(nn.Module):
    """Strided conv down, then CSP: one 1x1 branch through ``n`` ResBlocks, one 1x1 branch
    skipping them, concatenated and merged by a 1x1.

    Half-width blocks halve the cost of the residual blocks, which dominate the parameter
    count at strides 16 and 32. Two 1x1 convs rather than one conv + split keep the ONNX
    graph free of Slice/Shape arithmetic.
    """

    def __init__(self, c_in: int, c_out: int, n: int) -> None:
        super().__init__()
        self.down = ConvBNAct(c_in, c_out, 3, 2)
        self.main = ConvBNAct(c_out, c_out // 2, 1)
        self.skip = ConvBNAct(c_out, c_out // 2, 1)
        self.blocks = nn.Sequential(*[ResBlock(c_out // 2) for _ in range(n)])
        self.merge = ConvBNAct(c_out, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return self.merge(torch.cat([self.blocks(self.main(x)), self.skip(x)], dim=1))


class Backbone(nn.Module):
    """images [B, 3, H, W] -> features at strides 4, 8, 16, 32 with ``widths`` channels.

    The stem is two stride-2 3x3 convs (3 -> 16 at 1/2 resolution, 16 -> 32 at 1/4) and one 3x3
    conv at 1/4. It replaced a 4x4 stride-4 "patchify" conv, a linear 48 -> 32 projection of
    each patch that lost detail the smallest objects (16-24 px at 320) need; the overlapping
    stride-2 convs cost 9 % more per training step on 2 CPU cores (batch 16, interleaved timing).
    """

    def __init__(self, widths=(32, 64, 128, 192), depths=(2, 2, 1)) -> None:
        super().__init__()
        half = widths[0] // 2
        self.stem = nn.Sequential(
            ConvBNAct(3, half, 3, 2),
            ConvBNAct(half, widths[0], 3, 2),
            ConvBNAct(widths[0], widths[0], 3),
        )
        self.stages = nn.ModuleList(CSPStage(widths[i], widths[i + 1], depths[i]) for i in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


class PAN(nn.Module):
    """Path aggregation: lateral 1x1 -> top-down (upsample + add) -> bottom-up (stride-2 conv +
    add).

    features [C2 (s4), C3 (s8), C4 (s16), C5 (s32)] -> three maps (s8, s16, s32) with ``c``
    channels. C2 enters the stride-8 lateral through a stride-2 3x3 conv: small objects (12-32 px)
    were the weakest (AP50 0.15-0.60 against 0.93 above 64 px) and need the finer features.
    """

    def __init__(self, in_channels, c: int) -> None:
        super().__init__()
        self.fine = ConvBNAct(in_channels[0], c, 3, 2)
        in_channels = in_channels[1:]
        self.lateral = nn.ModuleList(ConvBNAct(ci, c, 1) for ci in in_channels)
        self.top_down = nn.ModuleList(ConvBNAct(c, c) for _ in in_channels[:-1])
        self.down = nn.ModuleList(ConvBNAct(c, c, 3, 2) for _ in in_channels[:-1])
        self.bottom_up = nn.ModuleList(ConvBNAct(c, c) for _ in in_channels[:-1])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [m(f) for m, f in zip(self.lateral, feats[1:])]
        lat[0] = lat[0] + self.fine(feats[0])
        td = [lat[-1]]
        for i in range(len(lat) - 2, -1, -1):
            up = F.interpolate(td[0], scale_factor=2.0, mode="nearest")
            td.insert(0, self.top_down[i](lat[i] + up))
        out = [td[0]]
        for i in range(1, len(td)):
            out.append(self.bottom_up[i - 1](td[i] + self.down[i - 1](out[-1])))
        return out


class Head(nn.Module):
    """Per level: cls tower -> C logits, reg tower -> 4 * reg_max DFL logits. Not shared across
    levels, so BatchNorm statistics stay per level (as in NanoDet)."""

    def __init__(
        self,
        c: int,
        num_classes: int,
        levels: int = 3,
        reg_max: int = REG_MAX,
        depth: int = 1,
        cells=(1600, 400, 100),
    ) -> None:
        super().__init__()
        self.cells = tuple(cells)  # H * W per level, as constants so Reshape needs no Shape op
        self.cls_towers = nn.ModuleList(
            nn.Sequential(*[ConvBNAct(c, c) for _ in range(depth)]) for _ in range(levels)
        )
        self.reg_towers = nn.ModuleList(
            nn.Sequential(*[ConvBNAct(c, c) for _ in range(depth)]) for _ in range(levels)
        )
        self.cls_out = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for _ in range(levels))
        self.reg_out = nn.ModuleList(nn.Conv2d(c, 4 * reg_max, 1) for _ in range(levels))
        self.reset_bias()

    def reset_bias(self, prior: float = 0.01) -> None:
        """Classification prior 0.01 (RetinaNet) so early training is not swamped by negatives."""
        for conv in self.cls_out:
            nn.init.constant_(conv.bias, -torch.log(torch.tensor((1 - prior) / prior)).item())
        for conv in self.reg_out:
            nn.init.constant_(conv.bias, 1.0)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> cls logits [B, C, N], reg logits [B, 4 * reg_max, N] (levels concatenated)."""
        cls, reg = [], []
        for i, f in enumerate(feats):
            cls.append(
                self.cls_out[i](self.cls_towers[i](f)).reshape(
                    -1, self.cls_out[i].out_channels, self.cells[i]
                )
            )
            reg.append(
                self.reg_out[i](self.reg_towers[i](f)).reshape(
                    -1, self.reg_out[i].out_channels, self.cells[i]
                )
            )
        return torch.cat(cls, 2), torch.cat(reg, 2)


def make_anchors(size: int, strides=STRIDES) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points [N, 2] (x, y cell centres in input pixels) and their strides [N, 1]."""
    points, stride_col = [], []
    for s in strides:
        n = size // s
        c = (torch.arange(n, dtype=torch.float32) + 0.5) * s
        y, x = torch.meshgrid(c, c, indexing="ij")
        points.append(torch.stack([x.flatten(), y.flatten()], 1))
        stride_col.append(torch.full((n * n, 1), float(s)))
    return torch.cat(points), torch.cat(stride_col)


class DFL(nn.Module):
    """Expected distance of a softmax over ``reg_max`` bins, as a fixed 1x1 conv (YOLOv8)."""

    def __init__(self, num_anchors: int, reg_max: int = REG_MAX) -> None:
        super().__init__()
        self.num_anchors, self.reg_max = num_anchors, reg_max
        self.proj = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.proj.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, reg: torch.Tensor) -> torch.Tensor:
        """reg logits [B, 4 * reg_max, N] -> distances [B, 4, N] (l, t, r, b) in strides."""
        prob = reg.reshape(-1, 4, self.reg_max, self.num_anchors).transpose(1, 2).softmax(1)
        return self.proj(prob).reshape(-1, 4, self.num_anchors)


class NanoDet(nn.Module):
    """images [B, 3, S, S] RGB float in 0..1 -> (boxes [B, N, 4] xyxy px, scores [B, N, C]) in eval.

    In train mode returns (cls logits [B, N, C], reg logits [B, N, 4 * reg_max]) for the loss.
    """

    def __init__(
        self,
        num_classes: int,
        input_size: int = 320,
        widths=(32, 64, 128, 192),
        depths=(2, 2, 1),
        neck: int = 64,
        head_depth: int = 1,
        reg_max: int = REG_MAX,
    ) -> None:
        super().__init__()
        self.num_classes, self.input_size, self.reg_max = num_classes, input_size, reg_max
        self.normalization = {"mean": list(MEAN), "std": list(STD), "in_graph": True}
        std = torch.tensor(STD).view(1, 3, 1, 1)
        # x * (1/std) + (-mean/std): a Mul and an Add in the graph
        self.register_buffer("in_scale", 1.0 / std, persistent=False)
        self.register_buffer(
            "in_shift", -torch.tensor(MEAN).view(1, 3, 1, 1) / std, persistent=False
        )
        self.backbone = Backbone(widths, depths)
        self.neck = PAN(widths, neck)
        cells = [(input_size // s) ** 2 for s in STRIDES]
        self.head = Head(neck, num_classes, len(STRIDES), reg_max, head_depth, cells)
        self.dfl = DFL(sum(cells), reg_max)
        points, strides = make_anchors(input_size)
        self.register_buffer("anchor_points", points, persistent=False)
        self.register_buffer("anchor_strides", strides, persistent=False)

    def forward(self, images: torch.Tensor):
        cls, reg = self.head(self.neck(self.backbone(images * self.in_scale + self.in_shift)))
        if self.training:
            return cls.transpose(1, 2), reg.transpose(1, 2)
        return self.decode(reg), cls.sigmoid().transpose(1, 2)

    def decode(self, reg: torch.Tensor) -> torch.Tensor:
        """reg logits [B, 4 * reg_max, N] -> boxes [B, N, 4] (x1, y1, x2, y2) in input pixels."""
        dist = self.dfl(reg).transpose(1, 2) * self.anchor_strides  # [B, N, 4] ltrb in px
        return torch.cat(
            [self.anchor_points - dist[..., :2], self.anchor_points + dist[..., 2:]], -1
        )

    @torch.no_grad()
    def fuse(self) -> NanoDet:
        """Fold every BatchNorm into the conv before it (eval only; the ONNX graph then has no
        BN)."""
        for module in self.modules():
            if isinstance(module, ConvBNAct) and isinstance(module[1], nn.BatchNorm2d):
                module[0] = nn.utils.fusion.fuse_conv_bn_eval(module[0], module[1])
                module[1] = nn.Identity()
        return self.eval()
