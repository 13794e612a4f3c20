"""torchvision single-stage families: export, run in ONNX Runtime, match the PyTorch wrapper."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgedet.errors import ExportError, InputError  # noqa: E402
from exporters.pipeline import ExportOptions, build_exportable, export  # noqa: E402

# small sizes keep CI fast; SSD300's VGG extras need ~270 px or more
FAMILIES = [
    ("ssdlite320_mobilenet_v3_large", 160),
    ("ssd300_vgg16", 300),
    ("retinanet_resnet50_fpn", 128),
    ("retinanet_resnet50_fpn_v2", 128),
    ("fcos_resnet50_fpn", 128),
]


# every family is exported with NMS in test_family_parity.py; two cover the raw (--nms none) form
# here
@pytest.mark.parametrize("name,size", [FAMILIES[0], FAMILIES[4]])
def test_raw_export_runs_in_ort_and_matches_wrapper(tmp_path, name, size):
    opts = ExportOptions(model=name, imgsz=size, nms="none", dynamic_batch=True)
    em = build_exportable(opts)
    res = export(opts, tmp_path / f"{name}.onnx", model=em)
    m = res.manifest
    assert m.output_kind == "raw" and m.nms_where == "host" and m.input.shape == (-1, 3, size, size)
    assert len(m.class_names) == 91 and m.category_ids[1] == 1 and m.source["random_init"]
    assert max(v["max_abs"] for v in res.verification.values()) <= 1e-3

    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    got = sess.run(["boxes", "scores"], {"images": x.numpy()})
    with torch.no_grad():
        ref = [t.numpy() for t in em.module(x)]
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-3)
    boxes, scores = got
    assert scores.shape[2] == 91 and (scores >= 0).all() and (scores <= 1).all()
    assert (
        (boxes[..., 0] >= 0).all()
        and (boxes[..., 2] <= size).all()
        and (boxes[..., 3] <= size).all()
    )


def test_too_small_size_is_a_clear_error():
    with pytest.raises(ExportError, match="ssd300_vgg16 cannot run at --imgsz 160"):
        build_exportable(ExportOptions(model="ssd300_vgg16", imgsz=160))


def test_bad_size_and_options_refused_before_work(tmp_path):
    with pytest.raises(InputError, match="multiple of 32"):
        export(ExportOptions(model="retinanet_resnet50_fpn", imgsz=100), tmp_path / "m.onnx")
    with pytest.raises(InputError, match="--batch"):
        export(ExportOptions(model="fcos_resnet50_fpn", batch=0), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
