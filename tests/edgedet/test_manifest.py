import json

import pytest

from edgedet.errors import ManifestError
from edgedet.manifest import (
    SCHEMA,
    InputInfo,
    Manifest,
    manifest_path,
    read_manifest,
    write_manifest,
)
from edgedet.nms.params import NMSParams


def _manifest():
    return Manifest(
        family="nano",
        model="nano",
        class_names=["a", "b"],
        input=InputInfo("images", (-1, 3, 320, 320), "uint8"),
        output_kind="nms",
        nms=NMSParams(score_threshold=0.1),
        category_ids=[1, 2],
    )


def test_roundtrip_and_sidecar_name(tmp_path):
    art = tmp_path / "model.onnx"
    art.write_bytes(b"onnx bytes")
    path = write_manifest(art, _manifest())
    assert path == manifest_path(art) == tmp_path / "model.onnx.json"
    m = read_manifest(art)
    assert m.schema == SCHEMA
    assert m.input.shape == (-1, 3, 320, 320) and m.input.batch == -1 and m.input.dtype == "uint8"
    assert m.nms == NMSParams(score_threshold=0.1)
    assert m.artifact["bytes"] == 10 and len(m.artifact["sha256"]) == 64
    assert m.tools["edgedet"] and m.created


def test_stale_manifest_is_refused(tmp_path):
    art = tmp_path / "model.onnx"
    art.write_bytes(b"version 1")
    write_manifest(art, _manifest())
    art.write_bytes(b"version 2 (truncated?)")
    with pytest.raises(ManifestError, match="does not match its manifest"):
        read_manifest(art)
    assert read_manifest(art, verify=False).model == "nano"


def test_missing_unknown_schema_and_malformed(tmp_path):
    art = tmp_path / "m.onnx"
    art.write_bytes(b"x")
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(art)
    manifest_path(art).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(art)
    manifest_path(art).write_text(json.dumps({"schema": "other/9"}))
    with pytest.raises(ManifestError, match="schema"):
        read_manifest(art)
    manifest_path(art).write_text(json.dumps({"schema": SCHEMA, "family": "x"}))
    with pytest.raises(ManifestError, match="field 'model'"):
        read_manifest(art)
