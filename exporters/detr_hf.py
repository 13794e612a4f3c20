"""DETR through the optional HuggingFace ``transformers`` package: an end-to-end head, no NMS.

The graph ends in the end-to-end raw form and then the contract outputs by score threshold + top-k
(edgedet/onnx/nms/topk.py): ``boxes`` [B, Q, 4] xyxy input pixels (pred_boxes cx, cy, w, h in 0..1
of the input, scaled), ``scores`` [B, Q, 1] each query's best softmax probability over the real
classes (the last, "no object", column dropped) and ``labels`` [B, Q] its class: exactly what
``DetrImageProcessor.post_process_object_detection`` computes, in the same order of operations.

Weights: ``--weights DIR/model.safetensors`` (or any file in a directory saved with
``save_pretrained``) loads that model offline (``local_files_only``). Without weights a tiny random
model is built from its config (ResNet backbone from ``ResNetConfig``, never timm, never a hub
download) and calibrated so it behaves like a detector for tests and benchmarks: query embeddings
widened and the class and box heads re-centred on the decoder's outputs for a fixed input, so
queries differ and scores spread (a random DETR gives the same box and class to every query).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgedet.errors import ExportError, InputError, first_line
from edgedet.nms.topk import end_to_end_params
from exporters.base import ExportableModel, Normalize
from exporters.registry import BuildRequest, register_model

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DEFAULT_SIZE = 320
TINY = {
    "d_model": 64,
    "encoder_layers": 1,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
    "num_queries": 50,
    "init_std": 0.1,
}
TINY_BACKBONE = {
    "embedding_size": 16,
    "hidden_sizes": [16, 32, 64, 128],
    "depths": [1, 1, 1, 1],
    "out_features": ["stage4"],
}
TINY_CLASSES = 5


class DetrEndToEnd(nn.Module):
    """images [B, 3, H, W] -> (boxes [B, Q, 4] xyxy px, scores [B, Q, 1], labels [B, Q] int64)."""

    def __init__(self, model: nn.Module, imgsz: tuple[int, int], uint8_input: bool) -> None:
        super().__init__()
        self.model = model.eval()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD, uint8_input)
        h, w = imgsz
        self.register_buffer(
            "scale", torch.tensor([w, h, w, h], dtype=torch.float32), persistent=False
        )

    def forward(self, images):
        out = self.model(pixel_values=self.normalize(images))
        probs = torch.softmax(out.logits, -1)[..., :-1]  # drop "no object"
        scores, labels = probs.max(-1)
        c, wh = out.pred_boxes[..., :2], out.pred_boxes[..., 2:]
        boxes = torch.cat([c - 0.5 * wh, c + 0.5 * wh], -1) * self.scale
        return boxes, scores.unsqueeze(-1), labels


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ExportError(
            "the DETR family needs the optional package 'transformers' "
            "(pip install 'edgedet[transformers]')"
        ) from None
    return transformers


def tiny_config(num_classes: int | None = None):
    """A small random DETR config: ResNet backbone from ResNetConfig (no timm, nothing
    downloaded)."""
    tf = _transformers()
    classes = num_classes or TINY_CLASSES
    return tf.DetrConfig(
        backbone_config=tf.ResNetConfig(**TINY_BACKBONE),
        num_labels=classes,
        id2label={i: f"class{i}" for i in range(classes)},
        **TINY,
    )


def load_detr(weights: str | None, num_classes: int | None):
    """(model, random_init): from a saved directory offline, or a tiny random one."""
    tf = _transformers()
    if weights:
        folder = Path(weights).parent
        if not (folder / "config.json").is_file():
            raise InputError(
                f"--weights {weights}: DETR weights are a directory saved with save_pretrained "
                f"(config.json + model.safetensors); {folder} has no config.json"
            )
        try:
            model = tf.DetrForObjectDetection.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load DETR from {folder}: {first_line(exc, 200)}") from None
        return model.eval(), False
    torch.manual_seed(0)
    return tf.DetrForObjectDetection(tiny_config(num_classes)).eval(), True


@torch.no_grad()
def calibrate_random_heads(
    model: nn.Module, pixel_values: torch.Tensor, class_std: float = 3.0, box_std: float = 1.0
) -> None:
    """Spread a random DETR's queries (embeddings std 3) and re-centre its class and box heads on
    the decoder outputs for ``pixel_values``, so the queries' scores and boxes spread (logit std
    ``class_std``; box logits std ``box_std``, sizes around sigmoid(-1) = 0.27 of the image). For
    tests and benchmarks of randomly initialised models only."""
    # Queries must differ more than images do, or every query of an image gets the same score
    # (random init: query embeddings std 0.1; decoder outputs then vary ~300x more between images
    # than between the queries of one image, measured on 6 pictures).
    nn.init.normal_(model.model.query_position_embeddings.weight, std=3.0)
    seen = {}
    hook = model.bbox_predictor.layers[-1].register_forward_hook(
        lambda m, i, o: seen.setdefault("box_in", i[0])
    )
    out = model(pixel_values=pixel_values)
    hook.remove()
    # centres around 0.5, sizes around sigmoid(-1)
    box_offset = torch.tensor([0.0, 0.0, -1.0, -1.0])
    for layer, x, std, offset in (
        (model.class_labels_classifier, out.last_hidden_state, class_std, 0.0),
        (model.bbox_predictor.layers[-1], seen["box_in"], box_std, box_offset),
    ):
        x = x.reshape(-1, x.shape[-1])
        mean = x.mean(0)
        z = (x - mean) @ layer.weight.T
        layer.weight.mul_(std / z.std().clamp_min(1e-12))
        layer.bias.copy_(offset - layer.weight @ mean)


@register_model(
    "detr_hf",
    family="detr",
    own_weights=True,
    description=(
        "DETR (end-to-end, no NMS) via the optional transformers package: "
        "--weights FILE in a save_pretrained directory, "
        "else a tiny random model"
    ),
)
def build_detr(request: BuildRequest) -> ExportableModel:
    imgsz, num_classes, uint8_input = request.imgsz, request.num_classes, request.uint8_input
    source = request.source
    model, random_init = load_detr(request.weights, num_classes)
    size = imgsz or DEFAULT_SIZE
    if random_init:
        g = torch.Generator().manual_seed(1)
        calibrate_random_heads(model, (torch.rand(2, 3, size, size, generator=g) - 0.45) / 0.225)
    classes = model.config.num_labels
    id2label = model.config.id2label or {}
    names = [str(id2label.get(i, f"class{i}")) for i in range(classes)]
    module = DetrEndToEnd(model, (size, size), uint8_input).eval()
    queries = model.config.num_queries
    return ExportableModel(
        module=module,
        family="detr",
        name="detr_hf",
        class_names=names,
        imgsz=(size, size),
        # post_process's default 0.5
        nms=end_to_end_params(score_threshold=0.5, max_output_boxes=queries),
        normalization={"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "in_graph": True},
        source={
            **source,
            "transformers": _transformers().__version__,
            "random_init": random_init,
            "calibrated_heads": random_init,
        },
        category_ids=list(range(classes)),
        output_names=("boxes", "scores", "labels"),
        reference=lambda image: reference(model, image, 0.5),
        end_to_end=True,
        notes={"nms": "none (end-to-end head): score threshold + top-k", "queries": queries},
    )


@torch.no_grad()
def reference(model: nn.Module, image: torch.Tensor, threshold: float) -> dict:
    """transformers' own post-processing on one letterboxed image [3, H, W] (0..1), boxes in input
    pixels."""
    tf = _transformers()
    x = (image[None] - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    out = model(pixel_values=x)
    h, w = image.shape[1:]
    res = tf.DetrImageProcessor().post_process_object_detection(
        out, threshold=threshold, target_sizes=[(h, w)]
    )[0]
    return {"boxes": res["boxes"], "scores": res["scores"], "labels": res["labels"]}
