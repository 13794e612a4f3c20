"""Every attach-nms command in docs/byo.md and README.md runs, on a generated model exported the way
the named tool exports (so the documentation cannot rot), and --inspect suggests the documented
flags.
"""

import re
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import third_party as tp  # noqa: E402

from edgedet.cli.main import cli  # noqa: E402
from edgedet.manifest import read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
MODELS = {  # file name in the docs -> a model made the way that tool makes it
    "yolov8n.onnx": tp.ultralytics_like,
    "their_yolo.onnx": tp.ultralytics_like,
    "yolov5s.half.onnx": tp.yolov5_fp16,
    "yolox_s.onnx": tp.yolox_raw,
    "yolov6n.raw.onnx": tp.ltrb_raw,
    "version-RFB-320.onnx": tp.face_ssd,
    "retina_like.onnx": tp.logit_head,
    "ssd_face_deltas.onnx": tp.face_ssd_deltas,
    "yolo26n.onnx": tp.end2end_yolo,
}


def commands(doc: str) -> list[str]:
    """``edgedet attach-nms ...`` lines of the bash blocks of ``doc``."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / doc).read_text(), re.S)
    return [
        line.split("#")[0].strip()
        for b in blocks
        for line in b.splitlines()
        if line.startswith("edgedet attach-nms")
    ]


def invoke(cmd: str, where: Path):
    args = shlex.split(cmd)[1:]
    model = args[1]
    module, proto = MODELS[model]()
    onnx.save(proto, where / model)
    (where / "faces.txt").write_text("background\nface\n")
    if hasattr(module, "priors"):
        np.save(where / "priors.npy", module.priors())
    return CliRunner().invoke(cli, args, catch_exceptions=False)


DOC_COMMANDS = [(doc, c) for doc in ("docs/byo.md", "README.md") for c in commands(doc)]


def test_the_docs_have_an_example_per_head_type():
    docs = " ".join(c for d, c in DOC_COMMANDS if d == "docs/byo.md")
    for flag in (
        "--objectness",
        "--decode yolox",
        "--decode ltrb",
        "--decode ssd",
        "--background-class",
        "--score-activation",
        "--resize stretch",
        "--bgr",
        "--inspect",
    ):
        assert flag in docs
    assert any(d == "README.md" for d, _ in DOC_COMMANDS)


@pytest.mark.parametrize(
    "doc,cmd", DOC_COMMANDS, ids=[f"{d}:{c.split()[2]}" for d, c in DOC_COMMANDS]
)
def test_documented_command_runs(doc, cmd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(cmd, tmp_path)
    assert r.exit_code == 0, r.output
    if "--inspect" in cmd:
        assert r.output.startswith("input ") and "try    edgedet attach-nms" in r.output
        return
    out = shlex.split(cmd)[shlex.split(cmd).index("-o") + 1]
    m = read_manifest(tmp_path / out)
    assert m.nms_where == "graph" and (tmp_path / out).stat().st_size > 0
    if "faces.txt" in cmd:
        assert m.class_names == ["face"] and m.input.resize == "stretch"


@pytest.mark.parametrize(
    "doc,cmd",
    [(d, c) for d, c in DOC_COMMANDS if "--inspect" not in c and d == "docs/byo.md"],
    ids=lambda v: v.split()[2] if v.startswith("edgedet") else v,
)
def test_inspect_suggests_the_documented_head_flags(doc, cmd, tmp_path, monkeypatch):
    """What --inspect can read from the graph (not the pre-processing) is what the docs use."""
    monkeypatch.chdir(tmp_path)
    model = shlex.split(cmd)[2]
    r = invoke(f"edgedet attach-nms {model} --inspect", tmp_path)
    suggested = shlex.split(r.output.splitlines()[-1].split("try    ", 1)[1])
    suggested = suggested[3 : suggested.index("-o")]
    documented = shlex.split(cmd)
    for i in range(0, len(suggested)):
        if suggested[i].startswith("--"):
            j = documented.index(suggested[i])
            if i + 1 < len(suggested) and not suggested[i + 1].startswith("--"):
                assert documented[j + 1] == suggested[i + 1], (suggested, documented)
