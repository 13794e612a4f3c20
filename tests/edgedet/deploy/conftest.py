"""Artifacts for the deploy tests: tiny ONNX files with manifests, and engine-like files whose
manifests carry a `tensorrt` section as `edgedet build` writes it (the deploy code reads only the
manifest of an engine, so the plan bytes can be anything)."""

import pytest
import tiny_models

from edgedet.contract import TensorSpec
from edgedet.manifest import TensorRTSection, read_manifest, write_manifest

NMS_SPECS = [
    TensorSpec("num_dets", "int32", (-1, 1)),
    TensorSpec("det_boxes", "float32", (-1, 4, 4)),
    TensorSpec("det_scores", "float32", (-1, 4)),
    TensorSpec("det_classes", "int32", (-1, 4)),
]


def make_engine(
    tmp_path,
    name="model.engine",
    batch=(1, 4, 8),
    plugins=(),
    version_compatible=False,
    precision="fp16",
    outputs=NMS_SPECS,
):
    """An engine file + manifest: dynamic batch with profile min/opt/max = ``batch``."""
    src = tiny_models.save(tiny_models.nms_model(batch=None), tmp_path / "src.onnx", batch=-1)
    manifest = read_manifest(src)
    manifest.outputs = list(outputs)
    manifest.precision = {"mode": precision}
    manifest.tensorrt = TensorRTSection.from_dict(
        {
            "version": "10.13.0",
            "precision": "strongly-typed",
            "version_compatible": version_compatible,
            "profiles": [
                [
                    {
                        "name": "images",
                        "min": [batch[0], 3, 64, 64],
                        "opt": [batch[1], 3, 64, 64],
                        "max": [batch[2], 3, 64, 64],
                    }
                ]
            ],
            "plugins": [
                {
                    "file": "libedgedet_nms_plugin.so",
                    "sha256": None,
                    "path": None,
                    "creators": [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}],
                    "serialized": s,
                }
                for s in plugins
            ],
        }
    )
    path = tmp_path / name
    path.write_bytes(b"plan bytes as TensorRT wrote them")
    write_manifest(path, manifest)
    return path


@pytest.fixture
def engine_factory(tmp_path):
    return lambda **kw: make_engine(tmp_path, **kw)


@pytest.fixture
def edit_manifest():
    """Rewrite a model's manifest in place: edit(path, fn) with fn(manifest) -> None."""

    def edit(path, fn):
        m = read_manifest(path, verify=False)
        fn(m)
        write_manifest(path, m)
        return path

    return edit
