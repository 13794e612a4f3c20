"""Every model family in the registry gets a Triton config that parses against Triton's
model_config.proto.

Exporting each family through torch.onnx takes 5-30 s apiece on 2 CPU cores, and a deploy config
reads only the manifest. So each family's manifest is made by the real export stages *after*
torch.onnx - ``attach`` (NMS: edgedet.onnx.nms) and ``make_manifest`` - on a stand-in raw graph
whose outputs have exactly the names, dtypes and shapes the family's torch module returns (one
forward pass at a small size, random weights). Only the backbone's ONNX nodes are missing, which no
deploy config reads. One real export (nano, checked below) shows the stand-in gives the same
manifest.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tritonclient")
onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

from edgedet.deploy import Artifact  # noqa: E402
from edgedet.deploy.triton import model_config, parse_config  # noqa: E402
from exporters.pipeline import (
    ExportOptions,
    attach,
    build_exportable,
    example_input,
    export,
    make_manifest,
)  # noqa: E402
from exporters.registry import list_models  # noqa: E402

# the cheapest member of each family and a size it accepts; ultralytics needs a checkpoint, so
# the yolo family is covered through exporters.yolo's module + head-spec path
# (tests/exporters/test_yolo.py)
CHEAPEST = {
    "nano": ("nano", None),
    "ssd": ("ssdlite320_mobilenet_v3_large", 64),
    "retinanet": ("retinanet_resnet50_fpn", 64),
    "fcos": ("fcos_resnet50_fpn", 64),
    "rcnn": ("fasterrcnn_mobilenet_v3_large_320_fpn", 64),
    "efficientdet": ("tf_efficientdet_d0", 128),
    "classifier": ("mobilenet_v3_large", 64),
    "detr": ("detr_hf", None),
}


def stand_in_raw_graph(em, o):
    """images -> the module's outputs (values from one forward pass), batch dim symbolic when
    dynamic."""
    x = example_input(em, o)
    with torch.no_grad():
        out = em.module(x)
    out = out if isinstance(out, (tuple, list)) else (out,)
    b = "batch" if o.dynamic_batch else o.batch
    nodes, inits, outputs = [], [], []
    for name, t in zip(em.output_names, out):
        arr = t.numpy()
        inits.append(numpy_helper.from_array(arr, f"{name}_value"))
        nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
        outputs.append(
            helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(arr.dtype), [b, *arr.shape[1:]]
            )
        )
    h, w = em.imgsz
    images = helper.make_tensor_value_info(
        "images", 1 if o.input_dtype == "float32" else 2, [b, 3, h, w]
    )
    graph = helper.make_graph(nodes, "stand_in", [images], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", o.opset)])


def family_manifest(name, imgsz, **opts):
    o = ExportOptions(model=name, imgsz=imgsz, dynamic_batch=True, verify=False, **opts)
    em = build_exportable(o)
    final = attach(stand_in_raw_graph(em, o), em, o)
    return make_manifest(em, final, o, {}, {})


def test_every_registry_family_is_covered():
    # "tiny" is the test-only family tests/helpers/tiny_torch.py registers
    assert {e.family for e in list_models()} - {"yolo", "tiny"} == set(CHEAPEST)


@pytest.mark.parametrize("family", sorted(CHEAPEST))
def test_triton_config_of_each_family_parses(family, tmp_path):
    name, size = CHEAPEST[family]
    manifest = family_manifest(name, size)
    cfg = parse_config(model_config(Artifact(tmp_path / "m.onnx", manifest), family, max_batch=4))
    assert cfg.max_batch_size == 4 and cfg.input[0].name == "images"
    assert [o.name for o in cfg.output] == [o.name for o in manifest.outputs]
    assert [list(o.dims) for o in cfg.output] == [list(s.shape[1:]) for s in manifest.outputs]
    if family == "classifier":
        assert cfg.output[0].name == "probs" and cfg.output[0].dims[0] == 1000
    else:
        assert [o.name for o in cfg.output][:4] == [
            "num_dets",
            "det_boxes",
            "det_scores",
            "det_classes",
        ]


def test_yolo_family_and_raw_outputs_parse(tmp_path):
    from torch import nn

    from exporters.yolo import YoloHeadSpec, exportable_from_module

    class Levels(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(3, 4 * 4 + 3, s, s) for s in (8, 16, 32))

        def forward(self, x):
            return [conv(x) for conv in self.convs]

    em = exportable_from_module(Levels(), YoloHeadSpec("dfl", num_classes=3, reg_max=4), imgsz=64)
    for nms in ("edgedet", "none"):
        o = ExportOptions(model="ultralytics", imgsz=64, dynamic_batch=True, nms=nms)
        manifest = make_manifest(em, attach(stand_in_raw_graph(em, o), em, o), o, {}, {})
        cfg = parse_config(model_config(Artifact(tmp_path / "y.onnx", manifest), f"yolo_{nms}"))
        want = (
            ["boxes", "scores"]
            if nms == "none"
            else ["num_dets", "det_boxes", "det_scores", "det_classes"]
        )
        assert [t.name for t in cfg.output] == want and cfg.max_batch_size == 8


def test_stand_in_manifest_equals_a_real_export(tmp_path):
    """The stand-in changes nothing a deploy config reads: nano exported for real gives the same
    I/O."""
    real = export(
        ExportOptions(model="nano", dynamic_batch=True, verify=False), tmp_path / "nano.onnx"
    ).manifest
    stand_in = family_manifest("nano", None)
    assert real.outputs == stand_in.outputs and real.input == stand_in.input
    assert real.class_names == stand_in.class_names and real.nms == stand_in.nms
    assert model_config(Artifact(tmp_path / "nano.onnx", real), "n") == model_config(
        Artifact(tmp_path / "nano.onnx", stand_in), "n"
    )
    assert np.all([s.shape[0] == -1 for s in real.outputs])
