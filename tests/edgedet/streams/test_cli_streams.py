import json

import pytest
from click.testing import CliRunner

from edgedet.cli.main import cli

av = pytest.importorskip("av")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_infer_video_writes_jsonl_and_annotated_mp4(tiny_nms, sequence, tmp_path):
    out = tmp_path / "out"
    r = run(
        "infer",
        tiny_nms,
        sequence[0],
        "-o",
        out,
        "--min-score",
        "0",
        "--max-frames",
        "8",
        "--track",
    )
    assert r.exit_code == 0, r.output
    assert "8 frames from 1 stream(s)" in r.output and "FPS end to end" in r.output
    records = [json.loads(ln) for ln in (out / "detections.jsonl").read_text().splitlines()]
    assert [rec["frame"] for rec in records] == list(range(8)) and abs(
        records[1]["pts"] - 1 / 30
    ) < 1e-5
    assert all("track_id" in d for rec in records for d in rec["detections"])
    with av.open(str(out / "shapes.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 8


def test_infer_bad_sources_one_line(tiny_nms, tmp_path):
    for source, fragment in (
        (tmp_path / "none.mp4", "does not exist"),
        ("rtsp://127.0.0.1:9/cam", "cannot open stream"),
        ("41", "camera 41"),
    ):
        r = CliRunner().invoke(
            cli, ["infer", str(tiny_nms), str(source), "-o", str(tmp_path / "o")]
        )
        lines = [ln for ln in r.output.splitlines() if ln.startswith("edgedet: error")]
        assert (
            r.exit_code == 2
            and len(lines) == 1
            and fragment in lines[0]
            and "Traceback" not in r.output
        ), r.output
        # nothing written
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_bench_source_labels_pipeline_and_model_fps(tiny_nms, sequence, tmp_path):
    out = tmp_path / "b.json"
    r = run("bench", tiny_nms, sequence[0], "--max-frames", "10", "--json", out)
    assert r.exit_code == 0, r.output
    assert (
        "pipeline FPS (end to end" in r.output
        and "model-only FPS (backend call alone, not the pipeline)" in r.output
    )
    rep = json.loads(out.read_text())
    assert (
        rep["frames"] == 10
        and rep["pipeline_fps"] > 0
        and rep["latency_ms"]["p99"] >= rep["latency_ms"]["p50"]
    )
    assert {"decode", "letterbox", "model", "postprocess", "latency"} <= set(rep["stages_ms"])


def test_stream_commands_pass_the_backend_options_on(tiny_nms, sequence, tmp_path, monkeypatch):
    """infer and bench on a video open the model with the same options as on images
    (--ort-spinning and --providers reach the ONNX Runtime backend)."""
    from edgedet.backends import onnxruntime as ort_backend

    seen = []
    real = ort_backend.spinning_config
    monkeypatch.setattr(ort_backend, "spinning_config", lambda s: seen.append(s) or real(s))
    base = ["--max-frames", "3", "--ort-spinning", "off", "--providers", "cpu"]
    r = run("infer", tiny_nms, sequence[0], "-o", tmp_path / "o", "--no-draw", *base)
    assert r.exit_code == 0, r.output
    r = run("bench", tiny_nms, sequence[0], *base)
    assert r.exit_code == 0, r.output
    assert seen == ["off", "off"]
