"""Classifier export sizes: AlexNet/VGG's adaptive pooling has no ONNX form, so unsupported sizes
are
refused before exporting, with the sizes that work."""

import pytest

pytest.importorskip("torch")

from edgedet.errors import ExportError  # noqa: E402
from exporters.pipeline import ExportOptions, build_exportable  # noqa: E402


def test_adaptive_pool_sizes_are_checked_before_export():
    with pytest.raises(
        ExportError,
        match=r"alexnet at --imgsz 320 ends in a 9x9 feature map .* use --imgsz 224 / 416",
    ):
        build_exportable(ExportOptions(model="alexnet", imgsz=320))
    em = build_exportable(ExportOptions(model="alexnet", imgsz=224))
    assert em.imgsz == (224, 224)
