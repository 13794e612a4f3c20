"""--nms edgedet (EdgeDetNMS op + local function), graph (standard ops) and none (host NMS) give the
same
detections through the runtime on exported models; run-time thresholds work end to end."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edgedet  # noqa: E402
from edgedet import contract  # noqa: E402
from edgedet.errors import InputError  # noqa: E402
from edgedet.onnx.nms import IMPLEMENTATIONS  # noqa: E402
from exporters.pipeline import NMS_CHOICES, ExportOptions, build_exportable, export  # noqa: E402

SIZE = 160
MODEL = "ssdlite320_mobilenet_v3_large"


def test_cli_choices_are_the_registry():
    assert tuple(IMPLEMENTATIONS) == contract.NMS_IMPLEMENTATIONS == NMS_CHOICES
    assert ExportOptions().nms == "edgedet"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from test_family_parity import images, spread_scores

    out = tmp_path_factory.mktemp("nms_choices")
    em = build_exportable(ExportOptions(model=MODEL, imgsz=SIZE))
    imgs = images(SIZE, 4)
    em.nms = em.nms.replace(score_threshold=spread_scores(em, SIZE, imgs), max_output_boxes=50)
    paths = {}
    for name, opts in (
        ("edgedet", {}),
        ("graph", {"nms": "graph"}),
        ("none", {"nms": "none"}),
        ("runtime", {"runtime_thresholds": True}),
    ):
        paths[name] = out / f"{name}.onnx"
        export(
            ExportOptions(model=MODEL, imgsz=SIZE, dynamic_batch=True, **opts),
            paths[name],
            model=em,
        )
    return paths, imgs


def detect(path, imgs, **thresholds):
    with edgedet.load(path) as det:
        det.set_thresholds(**thresholds)
        return det.predict(imgs)


def assert_same(a, b):
    assert len(a) == len(b)
    for da, db in zip(a, b):
        np.testing.assert_array_equal(da.class_ids, db.class_ids)
        np.testing.assert_array_equal(da.scores, db.scores)
        np.testing.assert_array_equal(da.boxes, db.boxes)


def test_edgedet_op_equals_graph_and_host_nms(exported):
    paths, imgs = exported
    ref = detect(paths["edgedet"], imgs)
    assert sum(len(d) for d in ref) >= 5, "the comparison needs detections"
    assert_same(detect(paths["graph"], imgs), ref)
    assert_same(detect(paths["none"], imgs), ref)  # host NMS on the raw outputs of the same graph
    assert_same(detect(paths["runtime"], imgs), ref)  # thresholds fed from the manifest


def test_run_time_thresholds_equal_host_nms_at_other_thresholds(exported):
    paths, imgs = exported
    base = detect(paths["runtime"], imgs)
    for score, iou in ((0.0001, 0.3), (0.9, 0.7)):
        got = detect(paths["runtime"], imgs, score=score, iou=iou)
        assert_same(got, detect(paths["none"], imgs, score=score, iou=iou))
    assert sum(map(len, detect(paths["runtime"], imgs, score=0.0001))) > sum(map(len, base))
    with (
        edgedet.load(paths["graph"]) as det,
        pytest.raises(InputError, match="--runtime-thresholds"),
    ):
        det.set_thresholds(score=0.5)
