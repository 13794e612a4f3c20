"""The bad-input corpus: every subcommand and the Python API, fed what a hostile user would feed
them.

For every case: a non-zero exit (or an EdgeDetError from the API), exactly one line on stderr (one
line of message), no traceback, every input byte-identical afterwards, no temporary or partial file
anywhere, and the previous good output pair intact. Cases run in-process (click's CliRunner) on a
fresh copy of one generated workspace (tests/edgedet/bad_inputs.py); a few run as real processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

import bad_inputs  # noqa: E402

from edgedet.errors import EdgeDetError  # noqa: E402

ort = pytest.importorskip("onnxruntime")

# click prints a progress bar's label once when not on a tty
PROGRESS_LABELS = {
    "detecting",
    "evaluating",
}
PARTIAL_MARKS = (".tmp", ".commit", ".prev")


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...] = ()
    api: Callable | None = None
    # files a failed run may legitimately leave (infer stopped by a corrupt image records the images
    # done)
    allow_new: tuple[str, ...] = ()
    needs: str | None = None  # an optional module the command needs first (torch)


def cli(case_id: str, *argv: str, **kw) -> Case:
    return Case(case_id, tuple(argv), **kw)


def api(case_id: str, fn: Callable) -> Case:
    return Case(case_id, api=fn)


def _cli_cases() -> list[Case]:
    c: list[Case] = []
    m = "models/nms.onnx"
    # -- manifests broken field by field, through every command that reads one
    for name in (
        list(bad_inputs.BAD_MANIFESTS) + list(bad_inputs.RAW_BYTES_MANIFESTS) + ["raw-classes"]
    ):
        bad = f"badman/{name}.onnx"
        c.append(cli(f"manifest-{name}-infer", "infer", bad, "imgs", "-o", "out"))
        c.append(cli(f"manifest-{name}-bench", "bench", bad, "--iters", "1", "--warmup", "0"))
        c.append(cli(f"manifest-{name}-quantize", "quantize", bad, "--fp16", "-o", "out/q.onnx"))
    c.append(cli("manifest-orphan-infer", "infer", "models/orphan.onnx", "imgs", "-o", "out"))
    c.append(cli("manifest-orphan-bench", "bench", "models/orphan.onnx", "--iters", "1"))
    c.append(cli("manifest-orphan-eval", "eval", "models/orphan.onnx", "--data", "data/coco"))
    # -- infer
    for value in ("nan", "-0.1", "1.5", "inf", "abc"):
        c.append(
            cli(f"infer-min-score-{value}", "infer", m, "imgs", "-o", "out", "--min-score", value)
        )
    c += [
        cli(
            "infer-score-threshold-nan",
            "infer",
            "models/raw.onnx",
            "imgs",
            "-o",
            "out",
            "--score-threshold",
            "nan",
        ),
        cli(
            "infer-iou-threshold-2",
            "infer",
            "models/raw.onnx",
            "imgs",
            "-o",
            "out",
            "--iou-threshold",
            "2",
        ),
        cli("infer-out-is-input-dir", "infer", m, "imgs", "-o", "imgs"),
        cli("infer-out-is-input-dir-abs-file", "infer", m, "imgs/b.jpg", "-o", "imgs"),
        cli("infer-missing-image", "infer", m, "nope.jpg", "-o", "out"),
        cli("infer-not-an-image", "infer", m, "notes.txt", "-o", "out"),
        cli("infer-empty-image", "infer", m, "empty.jpg", "-o", "out"),
        cli("infer-empty-folder", "infer", m, "empty_dir", "-o", "out"),
        cli(
            "infer-corrupt-stops",
            "infer",
            m,
            "broken_imgs",
            "-o",
            "out",
            allow_new=("out/a.png", "out/detections.json"),
        ),
        cli("infer-model-missing", "infer", "models/nope.onnx", "imgs", "-o", "out"),
        cli("infer-model-is-dir", "infer", "models", "imgs", "-o", "out"),
        cli("infer-model-junk", "infer", "models/junk.onnx", "imgs", "-o", "out"),
        cli("infer-model-empty", "infer", "models/empty.onnx", "imgs", "-o", "out"),
        cli("infer-model-is-manifest", "infer", "models/nms.onnx.json", "imgs", "-o", "out"),
        cli("infer-classifier", "infer", "models/cls.onnx", "imgs", "-o", "out"),
        cli("infer-too-many-dets", "infer", "models/toomany.onnx", "imgs", "-o", "out"),
        cli("infer-out-is-file", "infer", m, "imgs", "-o", "notes.txt"),
        cli("infer-out-in-proc", "infer", m, "imgs", "-o", "/proc/edgedet-out"),
        cli("infer-no-images", "infer", m),
        cli("infer-unknown-option", "infer", m, "imgs", "--colour", "red"),
        cli("infer-thresholds-baked", "infer", m, "imgs", "-o", "out", "--score-threshold", "0.5"),
    ]
    # -- eval
    for value in ("-1", "0", "x"):
        c.append(cli(f"eval-limit-{value}", "eval", m, "--data", "data/coco", "--limit", value))
    c += [
        cli("eval-batch-0", "eval", m, "--data", "data/coco", "--batch", "0"),
        cli("eval-batch--3", "eval", m, "--data", "data/coco", "--batch", "-3"),
        cli("eval-json-in-proc", "eval", m, "--data", "data/coco", "--json", "/proc/edgedet.json"),
        cli("eval-json-is-model", "eval", m, "--data", "data/coco", "--json", m),
        cli("eval-json-is-manifest", "eval", m, "--data", "data/coco", "--json", f"{m}.json"),
        cli("eval-json-is-dir", "eval", m, "--data", "data/coco", "--json", "imgs"),
        cli("eval-data-missing", "eval", m, "--data", "data/nope"),
        cli("eval-data-empty-dir", "eval", m, "--data", "empty_dir"),
        cli("eval-no-data", "eval", m),
        cli("eval-model-missing", "eval", "models/nope.onnx", "--data", "data/coco"),
    ]
    for name in (
        "not_utf8",
        "not_json",
        "list",
        "images_number",
        "no_file_name",
        "bbox2",
        "no_annotations",
        "no_category_name",
    ):
        c.append(
            cli(
                f"eval-coco-{name}",
                "eval",
                m,
                "--data",
                f"data/coco/{name}.json",
                "--images",
                "data/coco/images",
            )
        )
    for name in (
        "yolo_empty_image",
        "yolo_label_latin1",
        "yolo_label_short",
        "yolo_label_class",
        "yolo_label_nan",
        "yolo_no_classes",
        "yolo_classes_latin1",
        "yolo_no_images",
    ):
        c.append(cli(f"eval-{name}", "eval", m, "--data", f"data/{name}"))
    # -- bench
    for opt, value in (
        ("--iters", "0"),
        ("--iters", "-1"),
        ("--warmup", "-1"),
        ("--batch", "0"),
        ("--batch", "abc"),
        ("--batch", "2"),
        ("--cuda-graph", "on"),
    ):
        c.append(cli(f"bench{opt}-{value}", "bench", m, opt, value))
    c += [
        cli("bench-json-in-proc", "bench", m, "--iters", "1", "--json", "/proc/b.json"),
        cli("bench-json-is-model", "bench", m, "--iters", "1", "--json", m),
        cli("bench-images-missing", "bench", m, "--images", "nope"),
        cli("bench-images-empty", "bench", m, "--images", "empty_dir"),
        cli("bench-images-corrupt", "bench", m, "--images", "broken_imgs"),
        cli("bench-model-junk", "bench", "models/junk.onnx"),
    ]
    # -- compare
    for opt, value in (
        ("--iou", "nan"),
        ("--iou", "-1"),
        ("--min-score", "2"),
        ("--min-match", "1.5"),
        ("--min-match", "nan"),
        ("--max-score-delta", "nan"),
        ("--limit", "0"),
        ("--limit", "-1"),
    ):
        c.append(cli(f"compare{opt}-{value}", "compare", m, m, "--images", "imgs", opt, value))
    c += [
        cli("compare-json-is-model", "compare", m, m, "--images", "imgs", "--json", m),
        cli("compare-json-in-proc", "compare", m, m, "--images", "imgs", "--json", "/proc/c.json"),
        cli("compare-images-missing", "compare", m, m, "--images", "nope"),
        cli("compare-images-corrupt", "compare", m, m, "--images", "broken_imgs"),
        cli("compare-b-missing", "compare", m, "models/nope.onnx", "--images", "imgs"),
        cli("compare-task-mismatch", "compare", m, "models/cls.onnx", "--images", "imgs"),
        cli(
            "compare-nothing-detected-gate",
            "compare",
            m,
            m,
            "--images",
            "imgs",
            "--min-score",
            "1.0",
            "--min-match",
            "0.9",
        ),
        cli("compare-no-images-option", "compare", m, m),
    ]
    # -- quantize
    c += [
        cli("quantize-over-input", "quantize", m, "--fp16", "-o", m),
        cli("quantize-over-input-manifest", "quantize", m, "--fp16", "-o", f"{m}.json"),
        cli(
            "quantize-over-input-int8",
            "quantize",
            "models/raw.onnx",
            "--int8",
            "--calib",
            "imgs",
            "-o",
            "models/raw.onnx",
        ),
        cli("quantize-no-mode", "quantize", m, "-o", "out/q.onnx"),
        cli("quantize-int8-no-calib", "quantize", m, "--int8", "-o", "out/q.onnx"),
        cli(
            "quantize-calib-size-0",
            "quantize",
            m,
            "--int8",
            "--calib",
            "imgs",
            "--calib-size",
            "0",
            "-o",
            "out/q.onnx",
        ),
        cli(
            "quantize-calib-empty",
            "quantize",
            "models/raw.onnx",
            "--int8",
            "--calib",
            "empty_dir",
            "-o",
            "out/q.onnx",
        ),
        cli(
            "quantize-calib-missing",
            "quantize",
            "models/raw.onnx",
            "--int8",
            "--calib",
            "nope",
            "-o",
            "out/q.onnx",
        ),
        cli("quantize-model-missing", "quantize", "models/nope.onnx", "--fp16", "-o", "out/q.onnx"),
        cli("quantize-model-junk", "quantize", "models/junk.onnx", "--fp16", "-o", "out/q.onnx"),
        cli("quantize-orphan", "quantize", "models/orphan.onnx", "--fp16", "-o", "out/q.onnx"),
        cli("quantize-out-in-proc", "quantize", m, "--fp16", "-o", "/proc/q.onnx"),
        cli("quantize-out-is-dir", "quantize", m, "--fp16", "-o", "imgs"),
        cli(
            "quantize-prev-pair-bad-option",
            "quantize",
            m,
            "--fp16",
            "--method",
            "magic",
            "-o",
            "prev/model.fp16.onnx",
        ),
        cli(
            "quantize-prev-pair-bad-model",
            "quantize",
            "models/junk.onnx",
            "--fp16",
            "-o",
            "prev/model.fp16.onnx",
        ),
        cli("quantize-no-output", "quantize", m, "--fp16"),
        cli("check-qdq-missing", "check-qdq", "models/nope.onnx"),
        cli("check-qdq-junk", "check-qdq", "models/junk.onnx"),
        cli("check-qdq-empty", "check-qdq", "models/empty.onnx"),
    ]
    # -- attach-nms (third-party ONNX)
    raw = "models/raw.onnx"
    c += [
        cli(
            "attach-over-input",
            "attach-nms",
            raw,
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "-o",
            raw,
        ),
        cli(
            "attach-missing",
            "attach-nms",
            "models/nope.onnx",
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "-o",
            "out/a.onnx",
        ),
        cli(
            "attach-junk",
            "attach-nms",
            "models/junk.onnx",
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "-o",
            "out/a.onnx",
        ),
        cli(
            "attach-class-names-missing",
            "attach-nms",
            raw,
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "--class-names",
            "text/nope.txt",
            "-o",
            "out/a.onnx",
        ),
        cli(
            "attach-class-names-binary",
            "attach-nms",
            raw,
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "--class-names",
            "text/names_binary.txt",
            "-o",
            "out/a.onnx",
        ),
        cli(
            "attach-class-names-latin1",
            "attach-nms",
            raw,
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "--class-names",
            "text/names_latin1.txt",
            "-o",
            "out/a.onnx",
        ),
        cli(
            "attach-class-names-empty",
            "attach-nms",
            raw,
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "--class-names",
            "text/names_empty.txt",
            "-o",
            "out/a.onnx",
        ),
        cli(
            "attach-out-in-proc",
            "attach-nms",
            raw,
            "--boxes",
            "boxes",
            "--scores",
            "scores",
            "-o",
            "/proc/a.onnx",
        ),
        cli("attach-no-output", "attach-nms", raw, "--boxes", "boxes", "--scores", "scores"),
    ]
    # -- export (torch tier: refused before anything slow)
    for opt, value in (
        ("--imgsz", "100000"),
        ("--imgsz", "0"),
        ("--batch", "0"),
        ("--num-classes", "0"),
        ("--score-threshold", "nan"),
        ("--iou-threshold", "2"),
        ("--max-det", "0"),
        ("--top-k", "-1"),
        ("--opset", "5"),
        ("--model", "no-such-model"),
        ("--nms", "magic"),
    ):
        c.append(
            cli(f"export{opt}-{value}", "export", opt, value, "-o", "out/e.onnx", needs="torch")
        )
    c += [
        cli(
            "export-over-weights",
            "export",
            "--model",
            "nano",
            "--weights",
            "weights.pt",
            "-o",
            "weights.pt",
            needs="torch",
        ),
        cli(
            "export-over-weights-manifest",
            "export",
            "--model",
            "nano",
            "--weights",
            "weights.pt",
            "-o",
            "weights.pt.json",
            needs="torch",
        ),
        cli("export-no-output", "export", "--model", "nano", needs="torch"),
        cli("export-out-is-dir", "export", "--model", "nano", "-o", "imgs", needs="torch"),
        cli("export-out-in-proc", "export", "--model", "nano", "-o", "/proc/e.onnx", needs="torch"),
        cli(
            "export-imgsz-not-multiple",
            "export",
            "--model",
            "nano",
            "--imgsz",
            "33",
            "-o",
            "out/e.onnx",
            needs="torch",
        ),
    ]
    # -- demo, build, inspect, plugin, doctor, the group itself
    c += [
        cli("demo-val-size--1", "demo", "--val-size", "-1", needs="torch"),
        cli("demo-iters-0", "demo", "--iters", "0", needs="torch"),
        cli("demo-out-in-proc", "demo", "--out", "/proc/edgedet-demo", needs="torch"),
        cli("build-over-input", "build", m, "-o", m),
        cli("build-missing", "build", "models/nope.onnx", "-o", "out/m.engine"),
        cli("inspect-missing", "inspect", "models/nope.engine"),
        cli("inspect-onnx-as-engine", "inspect", m),
        cli("plugin-unknown", "plugin", "frobnicate"),
        cli("deploy-unknown-target", "deploy", "frobnicate", m),
        cli("deploy-triton-missing", "deploy", "triton", "models/nope.onnx", "-o", "out/repo"),
        cli("deploy-triton-junk", "deploy", "triton", "models/junk.onnx", "-o", "out/repo"),
        cli("deploy-triton-orphan", "deploy", "triton", "models/orphan.onnx", "-o", "out/repo"),
        cli(
            "deploy-triton-instances-0", "deploy", "triton", m, "-o", "out/repo", "--instances", "0"
        ),
        cli("deploy-deepstream-raw", "deploy", "deepstream", "models/raw.onnx", "-o", "out/ds"),
        cli(
            "deploy-deepstream-classifier",
            "deploy",
            "deepstream",
            "models/cls.onnx",
            "-o",
            "out/ds",
        ),
        cli(
            "deploy-deepstream-missing", "deploy", "deepstream", "models/nope.onnx", "-o", "out/ds"
        ),
        cli("serve-missing", "serve", "models/nope.onnx"),
        cli("serve-junk", "serve", "models/junk.onnx"),
        cli("serve-instances-0", "serve", m, "--instances", "0"),
        cli("doctor-unknown-option", "doctor", "--verbose-please"),
        cli("unknown-command", "frobnicate"),
        cli("unknown-global-option", "--frobnicate"),
    ]
    return c


def _load(path):
    import edgedet

    return edgedet.load(path, providers=["cpu"])


def _with_model(fn, path="models/nms.onnx"):
    def run():
        with _load(path) as det:
            fn(det)

    return run


def _after_close(fn):
    def run():
        det = _load("models/nms.onnx")
        det.close()
        fn(det)

    return run


def _api_cases() -> list[Case]:
    from edgedet.eval.datasets import load_dataset
    from edgedet.manifest import read_manifest

    rgb = np.zeros((48, 80, 3), np.uint8)
    c = [
        api(f"api-manifest-{name}", lambda name=name: _load(f"badman/{name}.onnx"))
        for name in (
            list(bad_inputs.BAD_MANIFESTS) + list(bad_inputs.RAW_BYTES_MANIFESTS) + ["raw-classes"]
        )
    ]
    c += [
        api(f"api-read-manifest-{name}", lambda name=name: read_manifest(f"badman/{name}.onnx"))
        for name in ("list", "null", "not-utf8", "short-shape", "class-names-string")
    ]
    c += [
        api("api-load-dir", lambda: _load("models")),
        api("api-load-missing", lambda: _load("models/nope.onnx")),
        api("api-load-junk", lambda: _load("models/junk.onnx")),
        api("api-load-empty", lambda: _load("models/empty.onnx")),
        api("api-load-orphan", lambda: _load("models/orphan.onnx")),
        api("api-load-manifest-file", lambda: _load("models/nms.onnx.json")),
        api("api-image-none", _with_model(lambda d: d(None))),
        api("api-image-int", _with_model(lambda d: d(5))),
        api("api-image-empty-array", _with_model(lambda d: d(np.array([])))),
        api("api-image-list-of-none", _with_model(lambda d: d([None]))),
        api("api-image-complex", _with_model(lambda d: d(rgb.astype(np.complex64)))),
        api("api-image-bool", _with_model(lambda d: d(rgb.astype(bool)))),
        api("api-image-object", _with_model(lambda d: d(np.full((4, 4, 3), None, dtype=object)))),
        api("api-image-float-255", _with_model(lambda d: d(np.full((8, 8, 3), 200.0, np.float32)))),
        api(
            "api-image-float-nan", _with_model(lambda d: d(np.full((8, 8, 3), np.nan, np.float32)))
        ),
        api("api-image-int32-300", _with_model(lambda d: d(np.full((8, 8, 3), 300, np.int32)))),
        api("api-image-negative", _with_model(lambda d: d(np.full((8, 8, 3), -1, np.int16)))),
        api("api-image-1-channel-3d", _with_model(lambda d: d(np.zeros((8, 8, 1), np.uint8)))),
        api("api-image-zero-size", _with_model(lambda d: d(np.zeros((0, 8, 3), np.uint8)))),
        api("api-image-missing-path", _with_model(lambda d: d("nope.jpg"))),
        api("api-image-corrupt-path", _with_model(lambda d: d("broken_imgs/b_corrupt.jpg"))),
        api("api-image-dir-path", _with_model(lambda d: d("imgs"))),
        api("api-min-score-nan", _with_model(lambda d: d(rgb, min_score=float("nan")))),
        api("api-min-score-negative", _with_model(lambda d: d(rgb, min_score=-0.5))),
        api("api-min-score-2", _with_model(lambda d: d(rgb, min_score=2))),
        api("api-min-score-string", _with_model(lambda d: d(rgb, min_score="0.5"))),
        api(
            "api-thresholds-iou-nan",
            _with_model(lambda d: d.set_thresholds(iou=float("nan")), "models/raw.onnx"),
        ),
        api(
            "api-thresholds-score-2",
            _with_model(lambda d: d.set_thresholds(score=2.0), "models/raw.onnx"),
        ),
        api("api-thresholds-baked", _with_model(lambda d: d.set_thresholds(score=0.5))),
        api("api-too-many-dets", _with_model(lambda d: d(rgb), "models/toomany.onnx")),
        api("api-classifier-top-k-0", _with_model(lambda d: d(rgb, top_k=0), "models/cls.onnx")),
        api("api-call-after-close", _after_close(lambda d: d(rgb))),
        api("api-predict-after-close", _after_close(lambda d: d.predict([rgb]))),
        api(
            "api-infer-after-close",
            _after_close(lambda d: d.infer(np.zeros((1, 3, 64, 64), np.float32))),
        ),
    ]
    c += [
        api(
            f"api-dataset-coco-{name}",
            lambda name=name: load_dataset(f"data/coco/{name}.json", "data/coco/images"),
        )
        for name in ("not_utf8", "not_json", "list", "images_number", "no_file_name", "bbox2")
    ]
    c += [
        api(f"api-dataset-{name}", lambda name=name: load_dataset(f"data/{name}"))
        for name in ("yolo_empty_image", "yolo_label_latin1", "yolo_label_nan", "yolo_no_images")
    ]
    return c


CASES = _cli_cases() + _api_cases()


def test_corpus_size():
    """The corpus covers every subcommand and the API with at least 150 cases (count printed)."""
    from edgedet.cli.main import COMMANDS

    commands = {case.argv[0] for case in CASES if case.argv}
    print(
        f"\nbad-input corpus: {len(CASES)} cases ({sum(bool(c.argv) for c in CASES)} CLI,"
        f" {sum(c.api is not None for c in CASES)} API) over {len(commands & set(COMMANDS))}"
        " subcommands"
    )
    assert len(CASES) >= 150
    assert set(COMMANDS) <= commands, f"subcommands without a case: {set(COMMANDS) - commands}"
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return bad_inputs.build_workspace(tmp_path_factory.mktemp("corpus") / "ws")


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def workspace(pristine, tmp_path, monkeypatch) -> Path:
    ws = tmp_path / "ws"
    # cheap; in-place writes would show in the hashes
    shutil.copytree(pristine, ws, copy_function=os.link)
    monkeypatch.chdir(ws)
    return ws


def check_untouched(ws: Path, before: dict[str, str], allow_new: tuple[str, ...]) -> None:
    after = snapshot(ws)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"inputs or previous outputs changed or removed: {changed}"
    new = sorted(set(after) - set(before) - set(allow_new))
    assert not new, f"a failed run left files: {new}"
    partial = [p for p in after if any(mark in Path(p).name for mark in PARTIAL_MARKS)]
    assert not partial, f"temporary or partial files left: {partial}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, workspace: Path):
    if case.needs:
        pytest.importorskip(case.needs)
    before = snapshot(workspace)
    if case.api is not None:
        with pytest.raises(EdgeDetError) as info:
            case.api()
        message = str(info.value)
        assert message and "\n" not in message, f"not one line: {message!r}"
    else:
        from edgedet.cli.main import cli as edgedet_cli

        result = CliRunner().invoke(edgedet_cli, list(case.argv), catch_exceptions=True)
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        ), f"uncaught {type(result.exception).__name__}: {result.exception}"
        assert result.exit_code not in (0, None), result.output
        assert "Traceback" not in result.output
        lines = [
            ln
            for ln in result.stderr.splitlines()
            if ln.strip() and ln.strip() not in PROGRESS_LABELS
        ]
        assert len(lines) == 1, f"expected one line on stderr, got {lines}"
        assert lines[0].startswith("edgedet: error: "), lines[0]
    check_untouched(workspace, before, case.allow_new)


@pytest.mark.parametrize(
    "argv",
    [
        ["infer", "models/nms.onnx", "imgs", "-o", "imgs"],
        ["quantize", "models/nms.onnx", "--fp16", "-o", "models/nms.onnx"],
        ["eval", "models/nms.onnx", "--data", "data/coco", "--batch", "0"],
        ["frobnicate"],
    ],
    ids=["infer-over-inputs", "quantize-over-input", "eval-batch-0", "unknown-command"],
)
def test_bad_input_real_process(argv, workspace):
    """The same promise through a real `python -m edgedet.cli` process (stderr as a user sees
    it)."""
    before = snapshot(workspace)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "edgedet.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(
        "edgedet: error: "
    ), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    check_untouched(workspace, before, ())


def test_corrupt_calibration_cache_is_rebuilt_with_one_warning(workspace, tmp_path):
    """A truncated or edited calibration cache is not trusted: one warning line, then
    recalibration."""
    from click.testing import CliRunner

    from edgedet.cli.main import cli as edgedet_cli

    cache = tmp_path / "cache"
    args = [
        "quantize",
        "models/raw.onnx",
        "--int8",
        "--calib",
        "imgs",
        "--cache-dir",
        str(cache),
        "-o",
        "out/q.onnx",
    ]
    first = CliRunner().invoke(edgedet_cli, args)
    assert first.exit_code == 0, first.output
    (entry,) = cache.glob("*.json")
    entry.write_bytes(entry.read_bytes()[: len(entry.read_bytes()) // 2])  # truncated
    again = CliRunner().invoke(edgedet_cli, args)
    assert again.exit_code == 0, again.output
    assert "recalibrating" in again.stderr and "Traceback" not in again.output
    assert "ranges cached" in again.stdout  # computed afresh, not "from cache"
    assert json.loads(entry.read_text())  # and the rebuilt cache is whole again


# -- checks with nothing to compare are not passes ------------------------------------------------


def test_export_parity_with_zero_detections_is_not_verified():
    pytest.importorskip("torch")
    from exporters.pipeline import verify_detections

    empty = {
        "num_dets": np.zeros((1, 1), np.int32),
        "det_boxes": np.zeros((1, 4, 4), np.float32),
        "det_scores": np.zeros((1, 4), np.float32),
        "det_classes": np.zeros((1, 4), np.int32),
    }
    assert verify_detections(empty, empty)["detections"]["verified"] is False
    one = {
        **empty,
        "num_dets": np.ones((1, 1), np.int32),
        "det_boxes": np.array([[[1, 1, 9, 9]] + [[0, 0, 0, 0]] * 3], np.float32),
    }
    assert verify_detections(one, one)["detections"]["verified"] is True


def test_compare_with_nothing_detected_says_so_and_fails_its_gate(workspace):
    from edgedet.cli.main import cli as edgedet_cli

    r = CliRunner().invoke(
        edgedet_cli,
        ["compare", "models/nms.onnx", "models/nms.onnx", "--images", "imgs", "--min-score", "1.0"],
    )
    # no gate asked: reported, not passed
    assert r.exit_code == 0 and "nothing to compare" in r.stdout
    r = CliRunner().invoke(
        edgedet_cli,
        [
            "compare",
            "models/nms.onnx",
            "models/nms.onnx",
            "--images",
            "imgs",
            "--min-score",
            "1.0",
            "--min-match",
            "0.5",
        ],
    )
    assert r.exit_code == 1 and "nothing was compared" in r.stderr


def test_random_weights_are_said_by_infer_eval_and_compare(workspace):
    from edgedet.cli.main import cli as edgedet_cli

    man = json.loads(Path("models/nms.onnx.json").read_text())
    # a quantised random model
    man["source"] = {
        "onnx": "x.onnx",
        "from": {"weights": None, "random_init": True},
    }
    Path("models/nms.onnx.json").write_text(json.dumps(man))
    runs = [
        ["infer", "models/nms.onnx", "imgs", "-o", "out"],
        ["eval", "models/nms.onnx", "--data", "data/coco"],
        ["compare", "models/nms.onnx", "models/raw.onnx", "--images", "imgs"],
    ]
    for argv in runs:
        r = CliRunner().invoke(edgedet_cli, argv)
        assert r.exit_code == 0, r.output
        assert "randomly initialised weights" in r.stderr and "--weights" in r.stderr, argv


def test_non_finite_detections_are_dropped_with_one_warning(workspace):
    import edgedet

    with (
        edgedet.load("models/nanbox.onnx") as det,
        pytest.warns(UserWarning, match="dropped 1 detection"),
    ):
        d = det(np.full((48, 80, 3), 128, np.uint8))
    assert len(d) == 1 and np.isfinite(d.boxes).all()


def test_infer_keeps_names_and_formats_apart(workspace):
    """a.jpg + a.png in one run stay two files; .jpeg/.webp keep their extension and format."""
    from PIL import Image

    from edgedet.cli.main import cli as edgedet_cli

    src = Path("mixed")
    src.mkdir()
    rgb = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for name in ("a.jpg", "a.png", "b.jpeg", "c.webp"):
        Image.fromarray(rgb).save(src / name)
    (Path("other")).mkdir()
    Image.fromarray(rgb).save(Path("other") / "a.jpg")
    r = CliRunner().invoke(edgedet_cli, ["infer", "models/nms.onnx", "mixed", "other", "-o", "out"])
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in Path("out").iterdir())
    assert written == ["a-1.jpg", "a.jpg", "a.png", "b.jpeg", "c.webp", "detections.json"]
    assert Image.open("out/c.webp").format == "WEBP" and Image.open("out/a.png").format == "PNG"


def test_16_bit_files_and_uint16_arrays_agree(tmp_path):
    """The same 16-bit pixels give the same 8-bit image whether read from a PNG or passed as an
    array."""
    from PIL import Image

    from edgedet.preprocess import as_rgb8, read_image

    gray16 = (np.arange(48 * 80, dtype=np.uint32).reshape(48, 80) * 17 % 65536).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    from_file = read_image(tmp_path / "g16.png")
    from_array = as_rgb8(np.repeat(gray16[..., None], 3, axis=2))
    assert from_file.dtype == from_array.dtype == np.uint8
    assert np.abs(from_file.astype(int) - from_array.astype(int)).max() <= 1
    assert from_array.max() > 200, "uint16 was clipped instead of rescaled"
