"""The device-side flow of docs/jetson.md in a fresh venv without torch.

A Jetson gets `pip install "edgedet[ort,build]"` (runtime + ONNX Runtime + onnx for the builder; TensorRT
comes from JetPack). This test makes such a venv - the project's declared dependencies of those extras,
installed by pip from the package index, then edgedet itself installed from a copy of this tree, not
this process's packages - checks that torch is not importable there, and runs `doctor`, `plugin build`,
`build`, `inspect`, `bench` and `infer` as installed commands: each must get as far as TensorRT's
absence and say how to install it in one line (no ImportError, no traceback, no request for the
`export` extra). The venv is cached under .edgedet-cache/ (gitignored), keyed on the declared
dependencies, so reruns only reinstall edgedet (about 15 s); the first run downloads from the index
(CI has it; about 90 s on the 2-core dev machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the first run creates the venv (~90 s); reruns ~15 s

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".edgedet-cache" / "notorch-venv"
EXTRAS = ("ort", "build")
PIP_FLAGS = ("-q", "--disable-pip-version-check")


def declared_requirements() -> list[str]:
    """The runtime dependencies plus the EXTRAS, as pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return reqs


def _pip(python: Path, *args: str, timeout: int = 900) -> None:
    proc = subprocess.run([str(python), "-m", "pip", *PIP_FLAGS, *args], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if "WARNING: Location" not in line)[-1500:]
        pytest.fail(f"pip {' '.join(args[:3])} ... failed in the no-torch venv (needs the package index):\n{tail}")


def _venv() -> Path:
    """The cached venv with the declared dependencies (recreated when they change)."""
    reqs = declared_requirements()
    key = hashlib.sha256(json.dumps([sys.version_info[:2], reqs]).encode()).hexdigest()
    python = VENV / "bin" / "python"
    stamp = VENV / ".edgedet-deps"
    if not (python.exists() and stamp.exists() and stamp.read_text() == key):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        _pip(python, "install", "setuptools>=68", "wheel", *reqs)
        stamp.write_text(key)
    return python


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory) -> Path:
    """The venv with edgedet installed from a copy of this tree (the tree itself stays untouched)."""
    python = _venv()
    src = tmp_path_factory.mktemp("edgedet-src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("edgedet", "exporters"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _pip(python, "install", "--no-deps", "--no-build-isolation", "--force-reinstall", str(src))
    return python


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TENSORRT_ROOT", "EDGEDET_PLUGIN_PATH")}
    env["EDGEDET_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def edgedet(python: Path, tmp_path: Path, *args) -> subprocess.CompletedProcess:
    """Run the venv's installed `edgedet` command from a folder outside this tree."""
    return subprocess.run([str(python.parent / "edgedet"), *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, env=_env(tmp_path), timeout=300)


def one_line_tensorrt_error(result, *fragments):
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out and "ImportError" not in out and "edgedet[export]" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("edgedet: error")]
    assert len(errors) == 1, out
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


def contract_onnx(folder: Path) -> Path:
    """A tiny edgedet ONNX file (images -> EdgeDetNMS node + local function) with its manifest, made here."""
    from onnx import TensorProto, helper, save

    from edgedet.manifest import InputInfo, Manifest, write_manifest
    from edgedet.nms import NMSParams
    from edgedet.onnx.nms import attach_nms

    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [3], [1, 48, 4])),
             helper.make_node("Reshape", ["images", "shape"], ["boxes"]),
             helper.make_node("Reshape", ["images", "shape"], ["logits"]),
             helper.make_node("Sigmoid", ["logits"], ["scores"])]
    graph = helper.make_graph(nodes, "tiny", [vi("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [vi("boxes", TensorProto.FLOAT, [1, 48, 4]), vi("scores", TensorProto.FLOAT, [1, 48, 4])])
    model = attach_nms(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                       NMSParams(max_output_boxes=10), "edgedet")
    path = folder / "model.onnx"
    save(model, str(path))
    write_manifest(path, Manifest(family="tiny", model="tiny", class_names=["a", "b", "c", "d"], output_kind="nms",
                                  input=InputInfo("images", (1, 3, 8, 8)), nms=NMSParams(max_output_boxes=10)))
    return path


def fake_engine(folder: Path) -> Path:
    """An engine file + manifest as `edgedet build` writes them (the plan bytes are never read by TensorRT here)."""
    from edgedet.manifest import InputInfo, Manifest, write_manifest
    from edgedet.nms import NMSParams

    path = folder / "model.engine"
    path.write_bytes(b"\x00not a real plan\x00" * 8)
    write_manifest(path, Manifest(family="tiny", model="tiny", class_names=["a", "b"], output_kind="nms",
                                  input=InputInfo("images", (1, 3, 8, 8)), nms=NMSParams(max_output_boxes=10),
                                  tensorrt={"version": "10.3.0.30", "module": "tensorrt", "precision": "strongly-typed",
                                            "version_compatible": False, "hardware_compatibility_level": "NONE",
                                            "gpu": {"name": "Orin", "compute_capability": "8.7"}, "plugins": []}))
    return path


def test_no_torch_in_the_device_venv(device_venv, tmp_path):
    proc = subprocess.run([str(device_venv), "-c", "import torch"], capture_output=True, text=True,
                          cwd=tmp_path, env=_env(tmp_path))
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr
    proc = subprocess.run([str(device_venv), "-c", "import onnx, onnxruntime, cv2, edgedet; print(edgedet.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path, env=_env(tmp_path))
    assert proc.returncode == 0 and "site-packages" in proc.stdout, proc.stdout + proc.stderr  # the installed copy


def test_doctor_names_the_tensorrt_install(device_venv, tmp_path):
    r = edgedet(device_venv, tmp_path, "doctor")
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out, out
    assert "TensorRT is not importable" in out and "apt install nvidia-tensorrt" in out


def test_plugin_build_reaches_the_missing_headers(device_venv, tmp_path, monkeypatch):
    """The plugin sources are installed with the package; what is missing is TensorRT's C++ headers."""
    from edgedet.errors import EdgeDetError
    from edgedet.trt import plugin_build

    monkeypatch.delenv("TENSORRT_ROOT", raising=False)  # as the venv's command sees it (_env)
    try:
        plugin_build.find_headers()
        pytest.skip("TensorRT C++ headers are installed on this machine")
    except EdgeDetError:
        pass
    one_line_tensorrt_error(edgedet(device_venv, tmp_path, "plugin", "build", "--arch", "sm_87"),
                            "TensorRT C++ headers", "libnvinfer-dev")


def test_build_reaches_tensorrt(device_venv, tmp_path):
    onnx_file = contract_onnx(tmp_path)
    err = one_line_tensorrt_error(edgedet(device_venv, tmp_path, "build", onnx_file, "-o", tmp_path / "m.engine",
                                          "--batch", "1"), "TensorRT")
    assert "pip install" in err or "apt install" in err
    assert not (tmp_path / "m.engine").exists()


def test_inspect_reports_tensorrt_missing(device_venv, tmp_path):
    """inspect is a report: it lists what the engine needs and why it cannot load here, then exits 0."""
    r = edgedet(device_venv, tmp_path, "inspect", fake_engine(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out and "edgedet[export]" not in out, out
    assert "can load  no" in out and "needs TensorRT, which is not installed here" in out
    assert "apt install nvidia-tensorrt" in out and "pip install cuda-python" in out


@pytest.mark.parametrize("command", [("bench", "--images", "{folder}", "--iters", "1"), ("infer", "{image}")])
def test_engine_commands_reach_tensorrt(device_venv, tmp_path, command):
    from PIL import Image

    engine = fake_engine(tmp_path)
    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "photo.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(image)
    args = [a.format(image=image, folder=image.parent) for a in command]
    err = one_line_tensorrt_error(edgedet(device_venv, tmp_path, args[0], engine, *args[1:]), "TensorRT")
    assert "pip install" in err or "apt install" in err
