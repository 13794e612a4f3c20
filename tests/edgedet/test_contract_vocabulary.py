"""The contract's vocabularies (str enums in edgedet/contract.py) and the manifest's tensorrt
section.

The enums' values must be the strings docs/contract.md lists (the doc's table is parsed), and a
member must behave exactly like its string wherever the old bare strings went: comparisons, dict
keys, messages, JSON, click choices.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import click
import pytest

from edgedet import contract
from edgedet.errors import ManifestError
from edgedet.manifest import (
    InputInfo,
    Manifest,
    TensorRTSection,
    manifest_path,
    read_manifest,
    write_manifest,
)
from edgedet.trt.plugins import PluginRecord

DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def doc_vocabularies() -> dict[str, list[str]]:
    """enum name -> values, from the table under '### Vocabularies' in docs/contract.md."""
    text = DOC.read_text().split("### Vocabularies", 1)[1].split("\n#", 1)[0]
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| `")]
    return {cells[1].strip().strip("`"): re.findall(r"`([^`]+)`", cells[2]) for cells in rows}


def vocabularies() -> dict[str, type[contract.Vocabulary]]:
    return {
        name: obj
        for name, obj in vars(contract).items()
        if isinstance(obj, type)
        and issubclass(obj, contract.Vocabulary)
        and obj is not contract.Vocabulary
    }


def test_doc_lists_every_vocabulary_with_its_values_in_order():
    doc = doc_vocabularies()
    assert len(doc) >= 10, "the doc's vocabulary table was not found"
    assert sorted(doc) == sorted(vocabularies())
    for name, enum in vocabularies().items():
        assert list(enum.values()) == doc[name], name


def test_doc_tensorrt_section_names_every_field():
    section = DOC.read_text().split("### The `tensorrt` section", 1)[1].split("\n#", 1)[0]
    keys = {
        k
        for line in section.splitlines()
        if line.startswith("| `")
        for k in re.findall(r"`([a-z_]+)`", line.split("|")[1])
    }
    fields = set(TensorRTSection.__dataclass_fields__) - {"extra"}
    assert fields <= keys, f"docs/contract.md does not describe {sorted(fields - keys)}"


def test_doc_names_every_contract_tensor():
    text = DOC.read_text()
    for name in (
        contract.INPUT_NAME,
        *contract.NMS_OUTPUTS,
        contract.DET_MASKS,
        *contract.RAW_OUTPUTS,
        contract.RAW_LABELS,
        contract.CLASS_PROBS,
        *contract.THRESHOLD_INPUTS,
    ):
        assert f"| `{name}` |" in text or f"`{name}`" in text, name


def test_members_behave_as_their_strings():
    kind = contract.OutputKind.NMS
    assert kind == "nms" and "nms" == kind and hash(kind) == hash("nms") and {"nms": 1}[kind] == 1
    assert f"{kind}|{kind!r}|{kind:>4}" == "nms|'nms'| nms" and str(kind) == "nms"
    assert "%s" % kind == "nms"  # noqa: UP031 - the old messages use %-formatting too
    assert (
        json.dumps({"output_kind": kind, kind: [contract.Task.DETECT]})
        == '{"output_kind": "nms", "nms": ["detect"]}'
    )
    assert contract.KIND_RAW is contract.OutputKind.RAW and contract.END_TO_END == "end-to-end"
    assert copy.deepcopy(kind) is kind and contract.OutputKind("raw") is contract.KIND_RAW
    with pytest.raises(ValueError):
        contract.Task("segment")


def test_choice_tuples_are_plain_strings():
    """click >= 8.2 offers an Enum's member names; the CLI gets the values."""
    for values in (contract.NMS_IMPLEMENTATIONS, contract.INPUT_DTYPES):
        assert all(type(v) is str for v in values)
    choices = click.Choice(contract.NMS_IMPLEMENTATIONS).choices
    assert choices == ("edgedet", "graph", "efficient", "none")
    assert set(contract.NMS_IMPLEMENTATIONS) <= set(contract.NMSImplementation.values())


def test_manifest_reads_members_and_writes_the_same_bytes(tiny_nms):
    raw = manifest_path(tiny_nms).read_bytes()
    m = read_manifest(tiny_nms)
    assert m.task is contract.Task.DETECT and m.output_kind is contract.OutputKind.NMS
    assert isinstance(m.nms_where, contract.NMSWhere)
    assert isinstance(m.nms_implementation, contract.NMSImplementation)
    assert (json.dumps(m.to_dict(), indent=2) + "\n").encode() == raw


@pytest.mark.parametrize(
    "field, value", [("nms_implementation", "fast"), ("nms_where", "gpu"), ("task", "segment")]
)
def test_values_outside_a_vocabulary_are_refused_by_name(tiny_nms, field, value):
    d = json.loads(manifest_path(tiny_nms).read_text())
    d[field] = value
    with pytest.raises(ManifestError, match=f"field '{field}' is '{value}'"):
        Manifest.from_dict(d)


# ---------------------------------------------------------------- the tensorrt section

BUILT = {  # key for key, in order, as edgedet/onnx/engine/build.py writes the section
    "version": "10.3.0.30",
    "module": "tensorrt",
    "precision": "strongly-typed",
    "network_flags": ["STRONGLY_TYPED"],
    "builder_flags": [],
    "version_compatible": True,
    "exclude_lean_runtime": False,
    "hardware_compatibility_level": "NONE",
    "gpu": {"name": "Orin", "compute_capability": "8.7", "integrated": True},
    "profiles": [
        [{"name": "images", "min": [1, 3, 8, 8], "opt": [2, 3, 8, 8], "max": [4, 3, 8, 8]}]
    ],
    "plugins": [
        {
            "file": "libedgedet_nms_plugin.so",
            "sha256": "ab" * 32,
            "path": "/opt/p/libedgedet_nms_plugin.so",
            "creators": [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}],
            "serialized": True,
            "architectures": {"sm": ["87"], "ptx": []},
        }
    ],
    "plugin_layers": 1,
    "nms_function_stripped": True,
    "dla_core": None,
    "builder_optimization_level": 3,
    "workspace_bytes": None,
    "timing_cache": "orin.cache",
}


def test_section_round_trips_key_for_key():
    t = TensorRTSection.from_dict(BUILT)
    assert t.version == "10.3.0.30" and t.gpu["compute_capability"] == "8.7"
    assert t.plugin_layers == 1 and isinstance(t.plugins[0], PluginRecord)
    assert t.plugins[0].creators[0].namespace == "edgedet"
    assert json.dumps(t.to_dict()) == json.dumps(BUILT)
    assert list(BUILT) == [f for f in TensorRTSection.__dataclass_fields__ if f != "extra"]


def test_section_keeps_unknown_keys_and_loads_old_sections():
    newer = TensorRTSection.from_dict({**BUILT, "refit": True})
    assert newer.extra == {"refit": True} and newer.to_dict() == {**BUILT, "refit": True}
    old = TensorRTSection.from_dict({"version": "10.3.0.30", "gpu": {"name": "Orin"}})
    assert old.plugins == [] and old.profiles == [] and not old.version_compatible
    assert old.hardware_compatibility_level == "NONE"


def test_manifest_file_with_a_section_round_trips(tmp_path):
    art = tmp_path / "m.engine"
    art.write_bytes(b"plan")
    # a dict as JSON holds it becomes the dataclass
    m = Manifest(
        family="tiny",
        model="t",
        class_names=["a"],
        input=InputInfo(),
        output_kind="nms",
        tensorrt=BUILT,
    )
    assert isinstance(m.tensorrt, TensorRTSection)
    raw = write_manifest(art, m).read_bytes()
    back = read_manifest(art)
    assert back.tensorrt == m.tensorrt and json.loads(raw)["tensorrt"] == BUILT
    assert (json.dumps(back.to_dict(), indent=2) + "\n").encode() == raw


def test_no_section_stays_absent(tiny_nms):
    m = read_manifest(tiny_nms)
    assert m.tensorrt is None and "tensorrt" not in m.to_dict()
    bare = Manifest(
        family="f", model="m", class_names=[], input=m.input, output_kind="nms", tensorrt={}
    )
    assert bare.tensorrt is None


def test_a_section_with_only_a_version_loads(tiny_nms):
    d = json.loads(manifest_path(tiny_nms).read_text())
    d["tensorrt"] = {"version": "10.3.0.30"}
    assert Manifest.from_dict(d).tensorrt == TensorRTSection("10.3.0.30")


@pytest.mark.parametrize(
    "section, field",
    [
        ({"module": "tensorrt"}, "tensorrt.version"),
        ({"version": 10}, "tensorrt.version"),
        ({"version": "10.3.0.30", "gpu": "Orin"}, "tensorrt.gpu"),
        ({"version": "10.3.0.30", "profiles": {}}, "tensorrt.profiles"),
        ({"version": "10.3.0.30", "plugins": [{"sha256": "ab"}]}, "tensorrt.plugins"),
        ([1], "tensorrt"),
    ],
)
def test_bad_sections_are_refused_by_name(tiny_nms, section, field):
    d = json.loads(manifest_path(tiny_nms).read_text())
    d["tensorrt"] = section
    with pytest.raises(ManifestError, match=f"field '{re.escape(field)}'"):
        Manifest.from_dict(d)
