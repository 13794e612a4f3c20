"""The device-side flows in fresh venvs without torch: the runtime alone, and the ONNX/TensorRT tier
on top.

Two venvs, each made from the project's declared dependencies (installed by pip from the package
index), then edgedet itself installed from a copy of this tree, not this process's packages:

  runtime   the core dependencies + RUNTIME_EXTRAS (`pip install "edgedet[ort,eval]"`): neither
            torch nor onnx importable. `infer`, `bench` and `eval` run a contract ONNX file (made
            here, in the test process) through ONNX Runtime and agree with this process's results;
            the TensorRT commands (`doctor`, `plugin build`, `inspect`, `bench`/`infer` of an
            engine) get as far as TensorRT's absence and say how to install it in one line; the
            ONNX-tier commands name their extra.
  onnx      the runtime venv + ONNX_EXTRAS (`pip install "edgedet[ort,eval,build]"`): torch not
  importable.
            `attach-nms` converts a third-party ONNX file (exported here) into the same detector
            this process makes, `quantize` writes FP16 and INT8 copies, `check-qdq` passes the INT8
            one, and `build` reaches TensorRT's absence.

No command may fail with an ImportError, a traceback, or a request for the torch-pulling `export`
extra. The venvs are cached under .edgedet-cache/ (gitignored), keyed on the declared dependencies,
so reruns only reinstall edgedet (about 15 s each). To keep the first run short (CI has the index;
about 90 s on the 2-core dev machine) the onnx venv holds only what ONNX_EXTRAS add and reads the
runtime venv's packages through a .pth file, so the runtime's packages are the very same files in
both.
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

pytestmark = pytest.mark.slow  # the first run creates the venvs (~90 s); reruns ~30 s

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".edgedet-cache"
RUNTIME_EXTRAS = ("ort", "eval")  # run ONNX files, score them
ONNX_EXTRAS = ("build",)  # the ONNX/TensorRT tier: attach-nms, quantize, check-qdq, build
PIP_FLAGS = ("-q", "--disable-pip-version-check")
BYO_FLAGS = ("--combined", "output0", "--box-format", "cxcywh")  # the Ultralytics-style test model


def declared_requirements(extras, core: bool = True) -> list[str]:
    """The runtime dependencies (``core``) plus ``extras``, as pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) if core else []
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return reqs


def _pip(python: Path, *args: str, timeout: int = 900) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", *PIP_FLAGS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tail = "\n".join(
            line for line in proc.stderr.splitlines() if "WARNING: Location" not in line
        )[-1500:]
        pytest.fail(
            f"pip {' '.join(args[:3])} ... failed in a no-torch venv (needs the package"
            f" index):\n{tail}"
        )


def _site_packages(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _venv(folder: Path, reqs: list[str], key: str, base: Path | None = None) -> Path:
    """The cached venv ``folder`` with ``reqs`` (recreated when ``key`` changes); with ``base`` (the
    python of another venv), that venv's packages are visible too (a .pth file) and only what they
    lack is installed.
    """
    python = folder / "bin" / "python"
    stamp = folder / ".edgedet-deps"
    if not (python.exists() and stamp.exists() and stamp.read_text() == key):
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
        if base is not None:
            Path(_site_packages(python), "_edgedet_base_venv.pth").write_text(
                _site_packages(base) + "\n"
            )
        _pip(python, "install", *(() if base else ("setuptools>=68", "wheel")), *reqs)
        stamp.write_text(key)
    return python


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([sys.version_info[:2], *parts]).encode()).hexdigest()


@pytest.fixture(scope="module")
def edgedet_src(tmp_path_factory) -> Path:
    """A copy of this tree to install from (the tree itself stays untouched)."""
    src = tmp_path_factory.mktemp("edgedet-src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("edgedet", "exporters"):
        shutil.copytree(
            ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return src


def _with_edgedet(python: Path, src: Path) -> Path:
    _pip(python, "install", "--no-deps", "--no-build-isolation", "--force-reinstall", str(src))
    return python


@pytest.fixture(scope="module")
def runtime_venv(edgedet_src) -> Path:
    reqs = declared_requirements(RUNTIME_EXTRAS)
    return _with_edgedet(_venv(CACHE / "notorch-venv", reqs, _key(reqs)), edgedet_src)


@pytest.fixture(scope="module")
def onnx_venv(runtime_venv, edgedet_src) -> Path:
    base = declared_requirements(RUNTIME_EXTRAS)
    reqs = declared_requirements(ONNX_EXTRAS, core=False)
    python = _venv(CACHE / "notorch-onnx-venv", reqs, _key(base, reqs), base=runtime_venv)
    return _with_edgedet(python, edgedet_src)


def _env(tmp_path: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "TENSORRT_ROOT", "EDGEDET_PLUGIN_PATH")
    }
    env["EDGEDET_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def edgedet(python: Path, tmp_path: Path, *args) -> subprocess.CompletedProcess:
    """Run the venv's installed `edgedet` command from a folder outside this tree."""
    return subprocess.run(
        [str(python.parent / "edgedet"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=300,
    )


def edgedet_ok(python: Path, tmp_path: Path, *args) -> str:
    r = edgedet(python, tmp_path, *args)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out, out
    return out


def imports(python: Path, tmp_path: Path, module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )


def one_line_tensorrt_error(result, *fragments):
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out and "ImportError" not in out and "edgedet[export]" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("edgedet: error")]
    assert len(errors) == 1, out
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Made here, where torch and onnx are: a third-party Ultralytics-style ONNX file (`images` ->
    `output0` [1, 4+C, N]), this process's attach-nms conversion of it (a contract ONNX with the
    EdgeDetNMS node), a few images and their detections by this process's runtime."""
    pytest.importorskip(
        "torch", reason="the test models are exported with torch in the test process"
    )
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    import onnx
    import third_party
    from PIL import Image

    from edgedet import load
    from edgedet.nms.params import NMSParams
    from edgedet.onnx.byo.attach import ByoSpec, attach_file

    folder = tmp_path_factory.mktemp("models")
    source = folder / "third_party.onnx"
    onnx.save(third_party.ultralytics_like()[1], str(source))
    contract = folder / "model.onnx"
    attach_file(source, contract, ByoSpec(combined="output0", box_format="cxcywh"), NMSParams())
    (folder / "images").mkdir()
    rng = np.random.default_rng(3)
    images = []
    for i, (h, w) in enumerate([(64, 64), (48, 80), (90, 60)]):  # letterboxed three ways
        images.append(folder / "images" / f"im{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images[-1])
    with load(contract, backend="onnxruntime") as det:
        detections = det.predict(images)
        names, category_ids = list(det.manifest.class_names), list(det.manifest.category_ids)
    assert sum(len(d) for d in detections) > 0, "the test model must detect something to compare"
    return {
        "source": source,
        "contract": contract,
        "images": images,
        "detections": detections,
        "class_names": names,
        "category_ids": category_ids,
    }


def coco_ground_truth(models: dict, path: Path) -> Path:
    """A COCO annotation file whose boxes are this process's detections scoring >= 0.3."""
    anns = []
    for image_id, dets in enumerate(models["detections"]):
        for r in dets.to_coco(image_id, models["category_ids"]):
            if r["score"] >= 0.3:
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": image_id,
                        "category_id": r["category_id"],
                        "bbox": r["bbox"],
                        "area": r["bbox"][2] * r["bbox"][3],
                        "iscrowd": 0,
                    }
                )
    assert anns, "no detection scores >= 0.3: the ground truth would be empty"
    from PIL import Image

    images = [
        {"id": i, "file_name": p.name, "width": Image.open(p).width, "height": Image.open(p).height}
        for i, p in enumerate(models["images"])
    ]
    categories = [
        {"id": c, "name": n} for c, n in zip(models["category_ids"], models["class_names"])
    ]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return path


def fake_engine(folder: Path) -> Path:
    """An engine file + manifest as `edgedet build` writes them (the plan bytes are never read by
    TensorRT here)."""
    from edgedet.manifest import InputInfo, Manifest, write_manifest
    from edgedet.nms import NMSParams

    path = folder / "model.engine"
    path.write_bytes(b"\x00not a real plan\x00" * 8)
    write_manifest(
        path,
        Manifest(
            family="tiny",
            model="tiny",
            class_names=["a", "b"],
            output_kind="nms",
            input=InputInfo("images", (1, 3, 8, 8)),
            nms=NMSParams(max_output_boxes=10),
            tensorrt={
                "version": "10.3.0.30",
                "module": "tensorrt",
                "precision": "strongly-typed",
                "version_compatible": False,
                "hardware_compatibility_level": "NONE",
                "gpu": {"name": "Orin", "compute_capability": "8.7"},
                "plugins": [],
            },
        ),
    )
    return path


def test_runtime_venv_has_neither_torch_nor_onnx(runtime_venv, tmp_path):
    for module in ("torch", "onnx", "onnxslim"):
        proc = imports(runtime_venv, tmp_path, module)
        assert proc.returncode != 0 and f"No module named '{module}'" in proc.stderr, (
            module,
            proc.stderr,
        )
    code = "import onnxruntime, cv2, faster_coco_eval, edgedet; print(edgedet.__file__)"
    proc = subprocess.run(
        [str(runtime_venv), "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    # the installed copy
    assert proc.returncode == 0 and "site-packages" in proc.stdout, proc.stdout + proc.stderr


def test_infer_bench_eval_run_a_contract_onnx(runtime_venv, models, tmp_path):
    """The runtime venv runs the contract ONNX (EdgeDetNMS node, no onnx package) and gets this
    process's answers."""
    model, images = models["contract"], models["images"]
    edgedet_ok(
        runtime_venv,
        tmp_path,
        "infer",
        model,
        *images,
        "-o",
        tmp_path / "out",
        "--min-score",
        "0",
        "--backend",
        "onnxruntime",
    )
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    for image_id, (path, dets) in enumerate(zip(images, models["detections"])):
        got = [r for r in records if r["file_name"] == str(path)]
        want = dets.to_coco(image_id, models["category_ids"])
        assert [r["category_id"] for r in got] == [r["category_id"] for r in want], path
        np.testing.assert_allclose([r["bbox"] for r in got], [r["bbox"] for r in want], atol=2e-3)
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], atol=2e-5)
    assert (tmp_path / "out" / "im0.png").is_file()  # annotated copies drawn with OpenCV

    edgedet_ok(
        runtime_venv,
        tmp_path,
        "bench",
        model,
        "--images",
        images[0].parent,
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
        tmp_path / "bench.json",
    )
    assert "onnxruntime" in (tmp_path / "bench.json").read_text()

    gt = coco_ground_truth(models, images[0].parent / "annotations.json")
    edgedet_ok(
        runtime_venv,
        tmp_path,
        "eval",
        model,
        "--data",
        gt,
        "--images",
        images[0].parent,
        "--json",
        tmp_path / "eval.json",
    )
    stats = json.loads((tmp_path / "eval.json").read_text())
    from edgedet import load
    from edgedet.eval.datasets import load_dataset
    from edgedet.eval.runner import evaluate

    with load(model, backend="onnxruntime") as det:
        want = evaluate(det, load_dataset(gt, images[0].parent))
    # the ground truth is found again
    assert stats["images"] == len(images) and stats["mAP50"] > 0.5, stats
    for key in ("mAP", "mAP50", "mAP75", "AR100", "detections"):
        assert stats[key] == pytest.approx(want[key], abs=1e-6), (key, stats, want)


@pytest.mark.parametrize(
    "command,extra",
    [
        (("attach-nms", "{source}", *BYO_FLAGS, "-o", "{out}"), "build"),
        (("quantize", "{model}", "--fp16", "-o", "{out}"), "build"),
        (("check-qdq", "{model}"), "build"),
        (("build", "{model}", "-o", "{out}"), "build"),
    ],
)
def test_onnx_tier_commands_name_their_extra(runtime_venv, models, tmp_path, command, extra):
    """Without the ONNX tier's packages each of its commands asks for its extra in one line, never
    `export`."""
    args = [
        a.format(source=models["source"], model=models["contract"], out=tmp_path / "out.x")
        for a in command
    ]
    r = edgedet(runtime_venv, tmp_path, *args)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out and "edgedet[export]" not in out, out
    assert f"pip install 'edgedet[{extra}]'" in out and not (tmp_path / "out.x").exists(), out


def test_onnx_venv_has_no_torch(onnx_venv, tmp_path):
    proc = imports(onnx_venv, tmp_path, "torch")
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr
    proc = subprocess.run(
        [
            str(onnx_venv),
            "-c",
            "import onnx, onnxslim, onnxruntime, edgedet; print(edgedet.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert proc.returncode == 0 and str(CACHE / "notorch-onnx-venv") in proc.stdout, (
        proc.stdout + proc.stderr
    )


def test_attach_quantize_check_qdq_then_build_reach_tensorrt(onnx_venv, models, tmp_path):
    """The ONNX/TensorRT tier's device flow: attach-nms, FP16 and INT8 copies, check-qdq, build."""
    from edgedet import load

    byo = tmp_path / "byo.onnx"
    out = edgedet_ok(onnx_venv, tmp_path, "attach-nms", models["source"], *BYO_FLAGS, "-o", byo)
    # the third-party input renamed off the contract's name
    assert "'images' -> 'byo_src_images'" in out, out
    with load(byo, backend="onnxruntime") as det:  # the same detector this process made
        for got, want in zip(det.predict(models["images"]), models["detections"]):
            np.testing.assert_array_equal(got.class_ids, want.class_ids)
            np.testing.assert_allclose(got.boxes, want.boxes, atol=2e-3)
            np.testing.assert_allclose(got.scores, want.scores, atol=2e-5)

    edgedet_ok(onnx_venv, tmp_path, "quantize", byo, "--fp16", "-o", tmp_path / "fp16.onnx")
    # --quantize-head: the test model's only convolutions are its head's, kept FP32 by default
    edgedet_ok(
        onnx_venv,
        tmp_path,
        "quantize",
        byo,
        "--int8",
        "--calib",
        models["images"][0].parent,
        "--quantize-head",
        "-o",
        tmp_path / "int8.onnx",
    )
    for name, precision in (("fp16.onnx", "fp16"), ("int8.onnx", "int8")):
        manifest = json.loads((tmp_path / f"{name}.json").read_text())
        assert precision in json.dumps(manifest.get("precision")), manifest.get("precision")
    out = edgedet_ok(onnx_venv, tmp_path, "check-qdq", tmp_path / "int8.onnx")
    qdq = int(out.split(": ", 1)[1].split()[0])
    assert qdq > 0 and "within TensorRT's parser rules" in out, out  # Q/DQ nodes there to check

    err = one_line_tensorrt_error(
        edgedet(
            onnx_venv,
            tmp_path,
            "build",
            tmp_path / "int8.onnx",
            "-o",
            tmp_path / "m.engine",
            "--batch",
            "1",
        ),
        "TensorRT",
    )
    assert "pip install" in err or "apt install" in err
    assert not (tmp_path / "m.engine").exists()


def test_doctor_names_the_tensorrt_install(runtime_venv, tmp_path):
    r = edgedet(runtime_venv, tmp_path, "doctor")
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out, out
    assert "TensorRT is not importable" in out and "apt install nvidia-tensorrt" in out


def test_plugin_build_reaches_the_missing_headers(runtime_venv, tmp_path, monkeypatch):
    """The plugin sources are installed with the package; what is missing is TensorRT's C++
    headers."""
    from edgedet.errors import EdgeDetError
    from edgedet.trt import plugin_build

    monkeypatch.delenv("TENSORRT_ROOT", raising=False)  # as the venv's command sees it (_env)
    try:
        plugin_build.find_headers()
        pytest.skip("TensorRT C++ headers are installed on this machine")
    except EdgeDetError:
        pass
    one_line_tensorrt_error(
        edgedet(runtime_venv, tmp_path, "plugin", "build", "--arch", "sm_87"),
        "TensorRT C++ headers",
        "libnvinfer-dev",
    )


def test_inspect_reports_tensorrt_missing(runtime_venv, tmp_path):
    """inspect is a report: it lists what the engine needs and why it cannot load here, then exits
    0."""
    r = edgedet(runtime_venv, tmp_path, "inspect", fake_engine(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out and "edgedet[export]" not in out, out
    assert "can load  no" in out and "needs TensorRT, which is not installed here" in out
    assert "apt install nvidia-tensorrt" in out and "pip install cuda-python" in out


@pytest.mark.parametrize(
    "command", [("bench", "--images", "{folder}", "--iters", "1"), ("infer", "{image}")]
)
def test_engine_commands_reach_tensorrt(runtime_venv, tmp_path, command):
    from PIL import Image

    engine = fake_engine(tmp_path)
    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "photo.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(image)
    args = [a.format(image=image, folder=image.parent) for a in command]
    err = one_line_tensorrt_error(
        edgedet(runtime_venv, tmp_path, args[0], engine, *args[1:]), "TensorRT"
    )
    assert "pip install" in err or "apt install" in err
