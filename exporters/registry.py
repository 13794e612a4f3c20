"""Model names the exporter knows, and how to build each one."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from edgedet.errors import InputError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    task: str
    description: str
    build: Callable  # (state_dict | None, imgsz, num_classes, uint8_input, source) -> ExportableModel
    size_multiple: int = 32  # FPN / stride-32 networks; SSD's fixed-size heads take any size
    own_weights: bool = False  # the builder reads --weights itself (e.g. Ultralytics pickled checkpoints)


def _nano(state, imgsz, num_classes, uint8_input, source):
    from exporters.nano.export import build_exportable

    return build_exportable(state, imgsz, num_classes, uint8_input, source)


def _tv(name):
    def build(state, imgsz, num_classes, uint8_input, source):
        from exporters.torchvision_det import build_torchvision

        return build_torchvision(name, state, imgsz, num_classes, uint8_input, source)

    return build


def _cls(name):
    def build(state, imgsz, num_classes, uint8_input, source):
        from exporters.classifiers import build_classifier

        return build_classifier(name, state, imgsz, num_classes, uint8_input, source)

    return build


def _rcnn(name):
    def build(state, imgsz, num_classes, uint8_input, source):
        from exporters.rcnn import build_two_stage

        return build_two_stage(name, state, imgsz, num_classes, uint8_input, source)

    return build


_TWO_STAGE = ("fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
              "fasterrcnn_mobilenet_v3_large_320_fpn", "maskrcnn_resnet50_fpn")


def _ultralytics(state, imgsz, num_classes, uint8_input, source):
    from exporters.yolo import build_ultralytics

    return build_ultralytics(source.get("weights"), imgsz, uint8_input, source)


def _effdet(name):
    def build(state, imgsz, num_classes, uint8_input, source, decode_in_graph=False):
        from exporters.effdet_det import build_effdet

        return build_effdet(name, state, imgsz, num_classes, uint8_input, source, decode_in_graph)

    return build


def _detr(state, imgsz, num_classes, uint8_input, source):
    from exporters.detr_hf import build_detr

    return build_detr(state, imgsz, num_classes, uint8_input, source)


_CLASSIFIERS = ("alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "mobilenet_v3_large")

_ENTRIES = [
    ModelEntry("nano", "nano", "detect", "edgedet's built-in anchor-free detector (synthetic shapes, 320x320)", _nano),
    ModelEntry("ssdlite320_mobilenet_v3_large", "ssd", "detect", "torchvision SSDlite320 MobileNetV3-Large",
               _tv("ssdlite320_mobilenet_v3_large"), size_multiple=1),
    ModelEntry("ssd300_vgg16", "ssd", "detect", "torchvision SSD300 VGG16", _tv("ssd300_vgg16"), size_multiple=1),
    ModelEntry("retinanet_resnet50_fpn", "retinanet", "detect", "torchvision RetinaNet ResNet-50 FPN", _tv("retinanet_resnet50_fpn")),
    ModelEntry("retinanet_resnet50_fpn_v2", "retinanet", "detect", "torchvision RetinaNet ResNet-50 FPN v2", _tv("retinanet_resnet50_fpn_v2")),
    ModelEntry("fcos_resnet50_fpn", "fcos", "detect", "torchvision FCOS ResNet-50 FPN", _tv("fcos_resnet50_fpn")),
    ModelEntry("ultralytics", "yolo", "detect", "Ultralytics YOLOv5u/v8/11 checkpoint given with --weights "
               "(needs the optional ultralytics package)", _ultralytics, own_weights=True),
] + [ModelEntry(n, "rcnn", "detect", f"torchvision {n} (two-stage, NMS inside the network)", _rcnn(n))
     for n in _TWO_STAGE
     ] + [ModelEntry(n, "efficientdet", "detect", f"EfficientDet {n} (needs the optional effdet package)", _effdet(n),
                size_multiple=128) for n in ("tf_efficientdet_d0", "tf_efficientdet_d1", "tf_efficientdet_d2")
     ] + [ModelEntry("detr_hf", "detr", "detect", "DETR (end-to-end, no NMS) via the optional transformers package: "
                "--weights FILE in a save_pretrained directory, else a tiny random model", _detr, own_weights=True)
     ] + [ModelEntry(n, "classifier", "classify", f"torchvision {n} (ImageNet classifier)", _cls(n), size_multiple=1)
     for n in _CLASSIFIERS]
MODELS: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def register(entry: ModelEntry) -> None:
    """Add a model family (used by the families that live in their own modules)."""
    MODELS[entry.name] = entry


def get_model(name: str) -> ModelEntry:
    """Look a model up by name; an unknown name suggests the nearest known ones."""
    if name in MODELS:
        return MODELS[name]
    near = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise InputError(f"unknown model '{name}'{hint} (`edgedet export --list` shows all)")
