"""The model registry: families register beside their builders, listing imports none of them,
and the docs' "Adding a model family" walk-through works as written (one new file)."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exporters import registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "models.md"


def walkthrough_file() -> str:
    """The python block of docs/models.md's "Adding a model family" section, as written there."""
    section = DOCS.read_text().split("## Adding a model family", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_listing_imports_neither_torch_nor_a_family():
    heavy = ("torch", "torchvision", "effdet", "transformers", "ultralytics")
    code = (
        "import json, sys; from exporters.registry import list_models; ms = list_models(); "
        "print(json.dumps([[m.name for m in ms], sorted(k for k in sys.modules "
        f"if k.split('.')[0] in {heavy!r} or k in {registry.LIST_ORDER!r})]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    names, imported = json.loads(out.stdout)
    assert imported == []
    assert (
        names[:2] == ["nano", "ssdlite320_mobilenet_v3_large"] and names[-1] == "mobilenet_v3_large"
    )
    assert len(names) == 22 and len(set(names)) == 22


def test_decorators_say_what_the_source_scan_read():
    pytest.importorskip("torch")
    lazy = {e.name: e for e in registry.list_models() if isinstance(e.build, str)}
    # importing runs the decorators, which check against the scan
    for module in registry.LIST_ORDER:
        importlib.import_module(module)
    for name, entry in lazy.items():
        now = registry.get_model(name)
        assert callable(now.build) and now.target == entry.target
        assert registry._declared(now) == registry._declared(entry)


def test_family_options_replace_family_branches():
    assert registry.get_model("fasterrcnn_resnet50_fpn").nms_in_network
    assert not registry.get_model("retinanet_resnet50_fpn").nms_in_network
    assert (
        registry.get_model("ultralytics").own_weights and registry.get_model("detr_hf").own_weights
    )
    assert registry.get_model("tf_efficientdet_d0").size_multiple == 128
    assert registry.get_model("resnet18").task == "classify"
    source = (ROOT / "exporters" / "pipeline.py").read_text()
    assert "family ==" not in source and "entry.family" not in source


def test_unknown_name_and_bad_declarations(tmp_path):
    from edgedet.errors import InputError

    with pytest.raises(InputError, match="did you mean ssdlite320_mobilenet_v3_large"):
        registry.get_model("ssdlite320")
    with pytest.raises(TypeError, match="unknown option.*size_multipel"):
        registry.register_model("x", family="x", description="x", size_multipel=8)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model("nano", family="nano", description="another nano")(
            lambda request: None
        )
    bad = tmp_path / "bad.py"
    bad.write_text(
        'D = "x"\n\n@register_model("b", family="b", description=D)\n'
        "def build(request):\n    pass\n"
    )
    with pytest.raises(ValueError, match=r"bad.py:3: register_model arguments must be literals"):
        registry.declarations("bad", bad)


@pytest.fixture
def forget_gridnet():
    """Leave the registry and sys.modules as other tests expect them."""
    yield
    registry._MODELS.pop("gridnet", None)
    sys.modules.pop("gridnet", None)


def test_adding_a_family_as_the_docs_say(tmp_path, monkeypatch, forget_gridnet):
    torch = pytest.importorskip("torch")
    import edgedet
    from edgedet.nms.host import batched_nms
    from exporters.pipeline import ExportOptions, export

    (tmp_path / "gridnet.py").write_text(walkthrough_file())
    assert [e.name for e in registry.declarations("gridnet", tmp_path / "gridnet.py")] == [
        "gridnet"
    ]
    monkeypatch.syspath_prepend(str(tmp_path))
    gridnet = importlib.import_module("gridnet")
    assert registry.get_model("gridnet").build is gridnet.build_gridnet

    result = export(ExportOptions(model="gridnet"), tmp_path / "gridnet.onnx")
    assert result.manifest.family == "gridnet" and result.verification["scores"]["max_abs"] < 1e-5

    # = the input size
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with edgedet.load(tmp_path / "gridnet.onnx", providers=["cpu"]) as det:
        got = det(image)
    em = gridnet.build_gridnet(registry.BuildRequest("gridnet"))
    with torch.no_grad():
        boxes, scores = em.module(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    want = batched_nms(boxes.numpy(), scores.numpy(), em.nms)
    n = int(want.num_dets[0, 0])
    assert n > 0 and len(got.boxes) == n
    np.testing.assert_array_equal(got.class_ids, want.det_classes[0, :n])
    # the runtime clips
    np.testing.assert_allclose(got.boxes, want.det_boxes[0, :n].clip(0, 64), atol=1e-3)
    np.testing.assert_allclose(got.scores, want.det_scores[0, :n], atol=1e-5)


def test_a_family_file_in_the_package_is_found_without_importing_it(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    package = tmp_path / "families"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "gridnet.py").write_text(walkthrough_file())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "PACKAGE", package)  # stands in for exporters/
    monkeypatch.setattr(registry, "_MODELS", {})
    monkeypatch.setattr(registry, "_scanned", False)
    try:
        entry = registry.get_model("gridnet")
        assert entry.build == "families.gridnet:build_gridnet"
        assert "families.gridnet" not in sys.modules
        assert entry(registry.BuildRequest("gridnet", imgsz=32)).imgsz == (32, 32)
        assert registry.get_model("gridnet").build is sys.modules["families.gridnet"].build_gridnet
    finally:
        sys.modules.pop("families.gridnet", None)
        sys.modules.pop("families", None)
