"""`edgedet build`, `edgedet inspect` and engine errors on the command line: one line, non-zero
exit.

Tests named *_here use this machine's real TensorRT situation (no full TensorRT, lean bindings
or nothing, no GPU); tests taking `fake_trt` use the stand-ins from trt_fakes.py.
"""

from __future__ import annotations

import json

import pytest
import trt_fakes
from click.testing import CliRunner
from trt_fakes import tensorrt_section, write_engine

from edgedet.cli.main import cli
from edgedet.doctor import tensorrt_info


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("edgedet: error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def test_build_without_tensorrt_here(tiny_nms, tmp_path):
    if tensorrt_info()["builder"]:
        pytest.skip("full TensorRT is installed here")
    r = run("build", tiny_nms, "-o", tmp_path / "m.engine")
    line = one_line_error(r, "TensorRT", "pip install tensorrt", "apt install")
    assert r.exit_code == 3 and not (tmp_path / "m.engine").exists()
    if tensorrt_info()["version"]:
        assert "lean runtime" in line


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--batch", "4,2,1"], "min <= opt <= max"),
        (["--opt-level", "9"], "--opt-level 9"),
        (["--workspace", "lots"], "--workspace"),
        (["--exclude-lean-runtime"], "--version-compatible"),
        (["--batch", "1,2,4"], "fixed batch of 1"),
    ],
)
def test_build_option_errors_come_first(tiny_nms, tmp_path, args, fragment):
    one_line_error(run("build", tiny_nms, "-o", tmp_path / "m.engine", *args), fragment)


def test_build_missing_onnx(tmp_path):
    one_line_error(
        run("build", tmp_path / "none.onnx", "-o", tmp_path / "m.engine"),
        "none.onnx",
        "does not exist",
    )


@pytest.mark.parametrize(
    "content,fragment", [(b"", "is empty"), (b'{"schema": 1}', "starts with JSON")]
)
def test_inspect_corrupt_engine(tmp_path, content, fragment):
    eng = tmp_path / "bad.engine"
    eng.write_bytes(content)
    one_line_error(run("inspect", eng), "bad.engine", fragment)


def test_inspect_truncated_engine_with_manifest(tmp_path):
    eng = write_engine(tmp_path / "t.engine", b"\x00plan bytes" * 40, tensorrt_section())
    eng.write_bytes(eng.read_bytes()[:100])
    one_line_error(run("inspect", eng), "t.engine", "truncated")


def test_inspect_engine_from_elsewhere_here(tmp_path):
    """Real TensorRT import (if any) and real GPU probe: says why it cannot load, exit 0."""
    eng = write_engine(
        tmp_path / "jetson.engine",
        b"\x00plan" * 40,
        tensorrt_section(version="10.3.0.30", gpu="Orin"),
    )
    r = run("inspect", eng)
    assert r.exit_code == 0, r.output
    assert "TensorRT 10.3.0.30" in r.output and "Orin" in r.output and "can load  no" in r.output
    data = json.loads(run("inspect", eng, "--print-json").output)
    assert data["can_load_here"] is False and data["reasons"]
    if not tensorrt_info()["version"]:
        assert "TensorRT" in data["reasons"][0]


def test_infer_engine_with_mismatching_manifest_here(tmp_path, image_dir):
    """The backend refuses from the manifest before TensorRT deserialises anything."""
    eng = write_engine(
        tmp_path / "jetson.engine", b"\x00plan" * 40, tensorrt_section(version="10.3.0.30")
    )
    r = run("infer", eng, image_dir, "-o", tmp_path / "out")
    info = tensorrt_info()
    if info["version"]:
        line = one_line_error(
            r, "jetson.engine cannot run here", "built with TensorRT 10.3.0.30", info["version"]
        )
        assert "edgedet build" in line
    else:
        one_line_error(r, "TensorRT", "pip install")


def test_inspect_fake_engine_lists_io(fake_trt, fake_engine):
    r = run("inspect", fake_engine, "--layers")
    assert r.exit_code == 0, r.output
    assert (
        "can load  yes" in r.output and "input     images float32 [-1, 3, 8, 8] profile" in r.output
    )
    assert "layers    not available" in r.output  # the fake, like lean, has no EngineInspector


def test_bench_engine_reports_gpu_time_and_cuda_graph_variants(fake_trt, fake_engine, tmp_path):
    js = tmp_path / "b.json"
    r = run(
        "bench",
        fake_engine,
        "--batch",
        "1,2",
        "--iters",
        3,
        "--warmup",
        1,
        "--cuda-graph",
        "both",
        "--json",
        js,
    )
    assert r.exit_code == 0, r.output
    assert (
        "cuda graph: off" in r.output and "cuda graph: on" in r.output and "gpu_compute" in r.output
    )
    data = json.loads(js.read_text())
    for mode in ("off", "on"):
        stats = data["cuda_graph"][mode]["batches"]["2"]
        assert stats["gpu"]["gpu_compute"]["n"] == 3 and stats["gpu"]["gpu_compute"][
            "p50"
        ] == pytest.approx(0.5)
        assert {"h2d", "d2h", "gpu_total"} <= set(stats["gpu"])
    assert (
        "gpu_compute" in data["stages"] and data["batches"] == data["cuda_graph"]["off"]["batches"]
    )


def test_bench_batch_above_profile_is_refused(fake_trt, fake_engine):
    one_line_error(run("bench", fake_engine, "--batch", "8", "--iters", 1), "batches up to 4")


def test_cuda_graph_option_needs_an_engine(tiny_nms):
    one_line_error(
        run("bench", tiny_nms, "--iters", 1, "--warmup", 0, "--cuda-graph", "on"),
        "TensorRT engines",
    )


def test_bench_fixed_engine_without_gpu_stats_still_works(fake_trt, tmp_path):
    eng = write_engine(
        tmp_path / "f.engine", trt_fakes.plan_bytes(fixed=1), tensorrt_section(), batch=1
    )
    r = run("bench", eng, "--iters", 2, "--warmup", 0)
    assert r.exit_code == 0 and "gpu_total" in r.output


def test_inspect_names_a_plugin_without_code_for_this_gpu(fake_trt, tmp_path):
    from edgedet.fileio import sha256_file

    lib = trt_fakes.fake_plugin_library(tmp_path / "libedgedet_nms_plugin.so")
    (tmp_path / "libedgedet_nms_plugin.so.json").write_text(
        json.dumps({"architectures": {"sass": ["sm_90"], "ptx": []}})
    )
    rec = {
        "file": lib.name,
        "sha256": sha256_file(lib),
        "creators": [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}],
    }
    eng = write_engine(
        tmp_path / "p.engine", trt_fakes.plan_bytes(), tensorrt_section(plugins=[rec])
    )
    data = json.loads(run("inspect", eng, "--print-json").output)
    assert data["can_load_here"] is False
    assert any("holds GPU code for sm_90 only" in r and "8.7" in r for r in data["reasons"]), data[
        "reasons"
    ]
