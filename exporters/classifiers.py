"""torchvision ImageNet classifiers with normalisation folded in; output ``probs`` [B, C]
(softmax)."""

from __future__ import annotations

import torch
from torch import nn

from edgedet.errors import ExportError
from exporters.base import ExportableModel, Normalize
from exporters.registry import BuildRequest, register_model

# name -> (builder kwargs, weights enum name for the category list)
CLASSIFIERS = {
    "alexnet": ({}, "AlexNet_Weights"),
    "vgg16": ({}, "VGG16_Weights"),
    "googlenet": ({"aux_logits": False, "init_weights": True}, "GoogLeNet_Weights"),
    "resnet18": ({}, "ResNet18_Weights"),
    "resnet50": ({}, "ResNet50_Weights"),
    "mobilenet_v3_large": ({}, "MobileNet_V3_Large_Weights"),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Classifier(nn.Module):
    """images [B, 3, H, W] (0..1 or uint8) -> probs [B, C]."""

    def __init__(self, model: nn.Module, uint8_input: bool) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD, uint8_input)
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(self.normalize(images)), dim=-1)


@register_model(
    "alexnet",
    family="classifier",
    task="classify",
    size_multiple=1,
    description="torchvision alexnet (ImageNet classifier)",
)
@register_model(
    "vgg16",
    family="classifier",
    task="classify",
    size_multiple=1,
    description="torchvision vgg16 (ImageNet classifier)",
)
@register_model(
    "googlenet",
    family="classifier",
    task="classify",
    size_multiple=1,
    description="torchvision googlenet (ImageNet classifier)",
)
@register_model(
    "resnet18",
    family="classifier",
    task="classify",
    size_multiple=1,
    description="torchvision resnet18 (ImageNet classifier)",
)
@register_model(
    "resnet50",
    family="classifier",
    task="classify",
    size_multiple=1,
    description="torchvision resnet50 (ImageNet classifier)",
)
@register_model(
    "mobilenet_v3_large",
    family="classifier",
    task="classify",
    size_multiple=1,
    description="torchvision mobilenet_v3_large (ImageNet classifier)",
)
def build_classifier(request: BuildRequest) -> ExportableModel:
    import torchvision.models as tvm

    from exporters.weights import apply_state_dict

    name, state, imgsz = request.name, request.state, request.imgsz
    num_classes, uint8_input, source = request.num_classes, request.uint8_input, request.source
    kwargs, weights_enum = CLASSIFIERS[name]
    classes = num_classes or 1000
    model = getattr(tvm, name)(weights=None, num_classes=classes, **kwargs).eval()
    if state is not None:
        apply_state_dict(model, state, source.get("weights", "weights"))
    size = imgsz or 224
    if size < 64:
        raise ExportError(f"{name} needs --imgsz of at least 64 (got {size})")
    _check_adaptive_pool(name, model, size)
    names = (
        list(getattr(tvm, weights_enum).IMAGENET1K_V1.meta["categories"])
        if classes == 1000
        else [f"class{i}" for i in range(classes)]
    )
    return ExportableModel(
        module=Classifier(model, uint8_input).eval(),
        family="classifier",
        name=name,
        class_names=names,
        imgsz=(size, size),
        nms=None,
        task="classify",
        output_names=("probs",),
        normalization={"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "in_graph": True},
        source={**source, "torchvision": name},
        notes={"preprocess": "letterbox (not resize-256/crop-224)"},
    )


def _check_adaptive_pool(name: str, model: nn.Module, size: int) -> None:
    """AlexNet and VGG end in AdaptiveAvgPool2d(6 or 7); ONNX has no adaptive pooling, so the
    exporter needs the feature map to be a multiple of the pool's output. Say which sizes work,
    before exporting.
    """
    import copy

    pool, features = getattr(model, "avgpool", None), getattr(model, "features", None)
    if not isinstance(pool, nn.AdaptiveAvgPool2d) or features is None:
        return
    out = pool.output_size if isinstance(pool.output_size, int) else pool.output_size[0]
    shapes = copy.deepcopy(features).to("meta")  # shape arithmetic only, no compute

    def side(s: int) -> int:
        return shapes(torch.empty(1, 3, s, s, device="meta")).shape[-1]

    if side(size) % out:
        ok = [s for s in range(64, 1025, 32) if side(s) % out == 0][:4]
        raise ExportError(
            f"{name} at --imgsz {size} ends in a {side(size)}x{side(size)} feature map that its"
            f" AdaptiveAvgPool2d({out}) cannot pool with fixed windows (ONNX has no adaptive"
            f" pooling); use --imgsz {' / '.join(map(str, ok))}"
        )
