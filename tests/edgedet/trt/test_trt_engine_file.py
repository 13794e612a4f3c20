import json
import sys
from pathlib import Path

import pytest

from edgedet.errors import ModelError
from edgedet.trt.engine_file import plan_problem, read_plan


def test_missing_and_empty(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        read_plan(tmp_path / "none.engine")
    (tmp_path / "e.engine").write_bytes(b"")
    with pytest.raises(ModelError, match="is empty"):
        read_plan(tmp_path / "e.engine")


def test_json_and_ultralytics_headers():
    assert "JSON" in plan_problem(b'{"schema": "edgedet.manifest/1"}')
    meta = json.dumps({"stride": 32}).encode()
    assert "Ultralytics" in plan_problem(len(meta).to_bytes(4, "little") + meta + b"\x00" * 64)


def test_onnx_file_is_recognised():
    sys.path.insert(0, str(Path(__file__).parents[2] / "helpers"))
    import tiny_models

    assert "ONNX model" in plan_problem(tiny_models.nms_model().SerializeToString())


def test_other_bytes_are_left_to_tensorrt():
    assert plan_problem(b"ftrt" + bytes(range(256))) is None
