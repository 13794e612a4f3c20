"""Nano on ONNX Runtime: the split path (host NMS between ORT slices) returns the same bits as ORT
running the EdgeDetNMS function body, on validation images, at the graph's threshold and the COCO
protocol's.
"""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edgedet  # noqa: E402
from edgedet import contract  # noqa: E402
from exporters import nano  # noqa: E402
from exporters.nano import synthetic  # noqa: E402
from exporters.pipeline import ExportOptions, export  # noqa: E402


@pytest.fixture(scope="module")
def nano_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("nano") / "nano.onnx"
    export(
        ExportOptions(
            model="nano", weights=str(nano.WEIGHTS_PATH), runtime_thresholds=True, verify=False
        ),
        out,
    )
    return out


def test_split_equals_function_body_on_val_images(nano_onnx):
    plain = edgedet.load(nano_onnx, edgedet_nms="function")
    split = edgedet.load(nano_onnx, edgedet_nms="host")
    assert split.backend.split is not None and plain.backend.split is None
    counts = []
    for index in range(4):
        rgb, _ = synthetic.render_image(synthetic.VAL_SEED, index)
        x, _, _ = plain.preprocess([rgb])
        for score in (0.05, 0.001):  # graph default, COCO protocol (many candidates, top_k bound)
            plain.set_thresholds(score=score)
            split.set_thresholds(score=score)
            want, got = plain.infer(x), split.infer(x)
            for name in contract.NMS_OUTPUTS:
                assert got[name].dtype == want[name].dtype
                np.testing.assert_array_equal(
                    got[name], want[name], err_msg=f"image {index} score {score} {name}"
                )
            counts.append(int(got["num_dets"][0, 0]))
    # real detections
    assert min(counts) > 0 and all(low > high for high, low in zip(counts[::2], counts[1::2]))


def test_load_and_first_result_import_neither_torch_nor_onnx(nano_onnx, tmp_path):
    """The runtime path a user takes (load + first Detections) stays lean: a fresh interpreter ends
    with neither torch nor onnx imported. Its time is a benchmark figure (benchmarks/e2e.py), not a
    test.
    """
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    rgb, _ = synthetic.render_image(synthetic.VAL_SEED, 0)
    photo = tmp_path / "val0.jpg"
    Image.fromarray(rgb).save(photo)
    code = (
        "import sys, edgedet; d = edgedet.load(sys.argv[1])(sys.argv[2]); "
        "print(len(d), d.source is not None, 'torch' in sys.modules, 'onnx' in sys.modules)"
    )
    root = str(Path(edgedet.__file__).parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code, str(nano_onnx), str(photo)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout.split()
    assert int(out[0]) > 0 and out[1:] == ["True", "False", "False"]
