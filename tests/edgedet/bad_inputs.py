"""Generated fixtures for the bad-input corpus (tests/edgedet/test_bad_inputs.py).

One pristine workspace holds everything a hostile user could point edgedet at: tiny contract models
(no torch), a classifier, models emitting NaN boxes or too many detections, images (good, corrupt,
empty, not an image), COCO and YOLO datasets broken in each way the issue lists, manifests broken
field by field, and a previous good output pair that no failed command may touch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import tiny_models
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edgedet.manifest import InputInfo, Manifest, write_artifact, write_onnx_artifact

GOOD_COCO = {
    "images": [{"id": 1, "file_name": "a.png", "width": 80, "height": 48}],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [8, 8, 20, 20],
            "area": 400,
            "iscrowd": 0,
        }
    ],
    "categories": [
        {"id": 1, "name": "circle"},
        {"id": 2, "name": "square"},
        {"id": 3, "name": "triangle"},
    ],
}


def classifier_model(size: int = 64, classes: int = 3) -> onnx.ModelProto:
    """images -> probs [B, classes]: softmax of (mean(images) * w)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0, axes=[1, 2, 3]),
        helper.make_node("Reshape", ["m", "shape_b1"], ["m_b1"]),
        helper.make_node("Mul", ["m_b1", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1], np.int64), "shape_b1"),
        numpy_helper.from_array(np.arange(1, classes + 1, dtype=np.float32)[None], "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cls",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def nms_model_with(boxes0=None, num_dets: int | None = None) -> onnx.ModelProto:
    """tiny_models.nms_model with its first box or its num_dets constant replaced."""
    m = tiny_models.nms_model()
    for init in m.graph.initializer:
        if init.name == "boxes_c" and boxes0 is not None:
            arr = numpy_helper.to_array(init).copy()
            arr[0, 0] = boxes0
            init.CopyFrom(numpy_helper.from_array(arr, "boxes_c"))
        if init.name == "two_i" and num_dets is not None:
            init.CopyFrom(numpy_helper.from_array(np.array([[num_dets]], np.int32), "two_i"))
    return m


def _manifest(
    name: str, kind: str = "nms", task: str = "detect", classes=tiny_models.CLASS_NAMES
) -> Manifest:
    from edgedet.nms.params import NMSParams

    return Manifest(
        family="tiny",
        model=name,
        class_names=list(classes),
        task=task,
        input=InputInfo("images", (1, 3, 64, 64), "float32"),
        output_kind=kind,
        nms=None if kind == "classify" else NMSParams(0.3, 0.5, 4, 0),
        nms_where={"nms": "graph", "raw": "host"}.get(kind, "none"),
        category_ids=list(range(1, len(classes) + 1)),
    )


# Each entry: (id, how to break the manifest dict) -- applied to a copy of the tiny NMS model's
# manifest.
BAD_MANIFESTS = {
    "list": lambda d: [],
    "null": lambda d: None,
    "number": lambda d: 42,
    "string": lambda d: "edgedet",
    "short-shape": lambda d: {**d, "input": {**d["input"], "shape": [1, 3, 64]}},
    "shape-not-list": lambda d: {**d, "input": {**d["input"], "shape": "1x3x64x64"}},
    "zero-height": lambda d: {**d, "input": {**d["input"], "shape": [1, 3, 0, 64]}},
    "wrong-size": lambda d: {**d, "input": {**d["input"], "shape": [1, 3, 32, 32]}},
    "kind-mismatch": lambda d: {**d, "output_kind": "raw", "nms_where": "host"},
    "short-category-ids": lambda d: {**d, "category_ids": [1]},
    "task-mismatch": lambda d: {**d, "task": "classify"},
    "unknown-task": lambda d: {**d, "task": "segment-everything"},
    "pad-value": lambda d: {**d, "input": {**d["input"], "pad_value": 300}},
    "class-names-string": lambda d: {**d, "class_names": "circle,square,triangle"},
    "unknown-dtype": lambda d: {**d, "input": {**d["input"], "dtype": "int4"}},
    "schema": lambda d: {**d, "schema": "edgedet.manifest/9"},
    "nms-iou": lambda d: {**d, "nms": {**d["nms"], "iou_threshold": 2.0}},
    "no-input": lambda d: {k: v for k, v in d.items() if k != "input"},
    "sha-mismatch": lambda d: {**d, "artifact": {**d["artifact"], "sha256": "0" * 64}},
}
RAW_BYTES_MANIFESTS = {"not-utf8": b"\xff\xfe{\x00", "not-json": b"{schema: 1", "empty": b""}


def build_workspace(root: Path) -> Path:
    """Write the pristine workspace under ``root``; returns it."""
    root.mkdir(parents=True, exist_ok=True)
    models = root / "models"
    tiny_models.save(tiny_models.nms_model(), models / "nms.onnx")
    tiny_models.save(tiny_models.raw_model(), models / "raw.onnx", kind="raw")
    write_onnx_artifact(
        classifier_model(), models / "cls.onnx", _manifest("cls", "classify", "classify")
    )
    write_onnx_artifact(
        nms_model_with(boxes0=[np.nan, 8, 40, np.inf]), models / "nanbox.onnx", _manifest("nanbox")
    )
    write_onnx_artifact(nms_model_with(num_dets=9), models / "toomany.onnx", _manifest("toomany"))
    # an edgedet-made artifact whose manifest was lost
    write_onnx_artifact(tiny_models.nms_model(), models / "orphan.onnx", _manifest("orphan"))
    (models / "orphan.onnx.json").unlink()
    (models / "junk.onnx").write_bytes(b"this is not an ONNX file")
    (models / "empty.onnx").write_bytes(b"")
    good = json.loads((models / "nms.onnx.json").read_text())
    bad = root / "badman"
    bad.mkdir()
    for name, breaker in BAD_MANIFESTS.items():
        shutil.copy(models / "nms.onnx", bad / f"{name}.onnx")
        (bad / f"{name}.onnx.json").write_text(json.dumps(breaker(json.loads(json.dumps(good)))))
    for name, data in RAW_BYTES_MANIFESTS.items():
        shutil.copy(models / "nms.onnx", bad / f"{name}.onnx")
        (bad / f"{name}.onnx.json").write_bytes(data)
    # raw model whose manifest lists 2 classes while the graph scores 3
    raw_good = json.loads((models / "raw.onnx.json").read_text())
    shutil.copy(models / "raw.onnx", bad / "raw-classes.onnx")
    (bad / "raw-classes.onnx.json").write_text(
        json.dumps({**raw_good, "class_names": ["a", "b"], "category_ids": [1, 2]})
    )

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    imgs = root / "imgs"
    imgs.mkdir()
    Image.fromarray(rgb).save(imgs / "a.png")
    Image.fromarray(rgb[:, ::-1]).save(imgs / "b.jpg")
    broken = root / "broken_imgs"
    broken.mkdir()
    Image.fromarray(rgb).save(broken / "a.png")
    (broken / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "empty_dir").mkdir()
    (root / "notes.txt").write_text("not an image\n")
    (root / "empty.jpg").write_bytes(b"")

    _datasets(root / "data", rgb)
    text = root / "text"
    text.mkdir()
    (text / "names_binary.txt").write_bytes(b"\x00\x01\x02circle\n")
    (text / "names_latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (text / "names_empty.txt").write_text("\n\n")

    # a previous good output pair that failed commands must leave alone
    prev = root / "prev"
    write_artifact(prev / "model.fp16.onnx", (models / "nms.onnx").read_bytes(), _manifest("prev"))
    (root / "weights.pt").write_bytes(b"not really torch weights")
    return root


def _datasets(data: Path, rgb: np.ndarray) -> None:
    coco = data / "coco"
    (coco / "images").mkdir(parents=True)
    Image.fromarray(rgb).save(coco / "images" / "a.png")
    (coco / "annotations.json").write_text(json.dumps(GOOD_COCO))
    variants = {
        "not_utf8.json": "caf\xe9".encode("latin-1"),
        "not_json.json": b"{images: ",
        "list.json": b"[]",
        "images_number.json": json.dumps({**GOOD_COCO, "images": 5}).encode(),
        "no_file_name.json": json.dumps({**GOOD_COCO, "images": [{"id": 1}]}).encode(),
        "bbox2.json": (
            json.dumps(
                {**GOOD_COCO, "annotations": [{**GOOD_COCO["annotations"][0], "bbox": [1, 2]}]}
            ).encode()
        ),
        "no_annotations.json": (
            json.dumps({k: v for k, v in GOOD_COCO.items() if k != "annotations"}).encode()
        ),
        "no_category_name.json": json.dumps({**GOOD_COCO, "categories": [{"id": 1}]}).encode(),
    }
    for name, data_bytes in variants.items():
        (coco / name).write_bytes(data_bytes)

    def yolo(
        name: str,
        label: bytes | None = b"0 0.5 0.5 0.2 0.2\n",
        image: bytes | None = None,
        classes: bytes | None = b"circle\nsquare\n",
    ) -> None:
        d = data / name
        (d / "images").mkdir(parents=True)
        (d / "labels").mkdir()
        if image is None:
            Image.fromarray(rgb).save(d / "images" / "a.png")
        else:
            (d / "images" / "a.png").write_bytes(image)
        if label is not None:
            (d / "labels" / "a.txt").write_bytes(label)
        if classes is not None:
            (d / "classes.txt").write_bytes(classes)

    yolo("yolo_empty_image", image=b"")
    yolo("yolo_label_latin1", label="0 0.5 0.5 0.2 0.2 caf\xe9\n".encode("latin-1"))
    yolo("yolo_label_short", label=b"0 0.5 0.5\n")
    yolo("yolo_label_class", label=b"7 0.5 0.5 0.2 0.2\n")
    yolo("yolo_label_nan", label=b"0 nan 0.5 0.2 0.2\n")
    yolo("yolo_no_classes", classes=None)
    yolo("yolo_classes_latin1", classes="caf\xe9\n".encode("latin-1"))
    (data / "yolo_no_images" / "labels").mkdir(parents=True)
    (data / "yolo_no_images" / "classes.txt").write_text("circle\n")
