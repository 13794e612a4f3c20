import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgedet.cli.main import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("edgedet: error")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]


def test_infer_writes_json_and_annotated_images(tiny_nms, image_dir, tmp_path):
    out = tmp_path / "out"
    r = run("infer", tiny_nms, image_dir, "-o", out, "--min-score", "0")
    assert r.exit_code == 0, r.output
    recs = json.loads((out / "detections.json").read_text())
    assert len(recs) == 4 and {r["file_name"].split("/")[-1] for r in recs} == {"a.png", "b.jpg"}
    # formats kept
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".json") == [
        "a.png",
        "b.jpg",
    ]
    assert Image.open(out / "a.png").format == "PNG" and "reached the model's limit" not in r.output


def test_infer_notes_when_max_det_truncates(tiny_nms, image_dir, tmp_path):
    from edgedet.manifest import read_manifest, write_manifest

    m = read_manifest(tiny_nms)
    m.nms = m.nms.replace(max_output_boxes=2)  # the tiny model returns 2 detections per image
    write_manifest(tiny_nms, m)
    r = run("infer", tiny_nms, image_dir, "-o", tmp_path / "out", "--min-score", "0")
    assert r.exit_code == 0 and "2 image(s) reached the model's limit of 2 detections" in r.output


def test_infer_bad_image_one_line_then_skip_bad(tiny_nms, image_dir, tmp_path):
    (image_dir / "c_corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    r = run("infer", tiny_nms, image_dir, "-o", tmp_path / "o1")
    one_line_error(r, "c_corrupt.jpg")
    r = run("infer", tiny_nms, image_dir, "-o", tmp_path / "o2", "--skip-bad", "--min-score", "0")
    assert r.exit_code == 1 and "1 skipped" in r.output
    assert len(json.loads((tmp_path / "o2" / "detections.json").read_text())) == 4


def test_infer_missing_inputs(tiny_nms, tmp_path):
    one_line_error(run("infer", tiny_nms, tmp_path / "nope.jpg"), "nope.jpg", "does not exist")
    one_line_error(run("infer", tmp_path / "nope.onnx", tmp_path), "nope.onnx")
    corrupt = tmp_path / "c.onnx"
    corrupt.write_bytes(b"not onnx")
    one_line_error(run("infer", corrupt, tmp_path), "c.onnx")


def test_bench_prints_and_writes_statistics(tiny_nms, tmp_path):
    js = tmp_path / "b.json"
    r = run("bench", tiny_nms, "--iters", 5, "--warmup", 1, "--json", js)
    assert r.exit_code == 0, r.output
    assert "end_to_end" in r.output and "includes:" in r.output
    data = json.loads(js.read_text())
    stats = data["batches"]["1"]
    for stage in ("preprocess", "inference", "postprocess", "end_to_end"):
        s = stats[stage]
        assert s["n"] == 5 and s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert stats["throughput_images_per_s"] > 0 and data["machine"]["cores"] >= 1


def test_bench_refuses_batch_of_fixed_model(tiny_nms):
    one_line_error(run("bench", tiny_nms, "--batch", "1,8", "--iters", 1), "fixed batch of 1")
    one_line_error(run("bench", tiny_nms, "--batch", "x"), "--batch")


def coco_folder(root, image: np.ndarray, name: str, boxes: list[tuple[int, list]]):
    """A one-image COCO folder: ``boxes`` are (category id, [x, y, w, h])."""
    (root / "images").mkdir(parents=True)
    Image.fromarray(image).save(root / "images" / name, quality=90)
    h, w = image.shape[:2]
    gt = {
        "images": [{"id": 1, "file_name": name, "width": w, "height": h}],
        "categories": [
            {"id": 1, "name": "circle"},
            {"id": 2, "name": "square"},
            {"id": 3, "name": "triangle"},
        ],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
            for i, (c, b) in enumerate(boxes, 1)
        ],
    }
    (root / "annotations.json").write_text(json.dumps(gt))
    return root


def test_eval_on_coco_folder(tiny_nms, tmp_path):
    # ground truth = exactly what the tiny model predicts -> mAP 1.0
    data = coco_folder(
        tmp_path / "ds",
        np.full((64, 64, 3), 128, np.uint8),
        "1.png",
        [(1, [8, 8, 32, 32]), (2, [30, 2, 30, 18])],
    )
    js = tmp_path / "e.json"
    r = run("eval", tiny_nms, "--data", data, "--json", js)
    assert r.exit_code == 0, r.output
    stats = json.loads(js.read_text())
    assert stats["mAP"] == pytest.approx(1.0) and stats["images"] == 1
    one_line_error(run("eval", tiny_nms, "--data", tmp_path / "nowhere"), "nowhere")


def test_export_unknown_model_suggests(tmp_path):
    pytest.importorskip("torch")
    one_line_error(
        run("export", "--model", "ssdlite320", "-o", tmp_path / "m.onnx"),
        "ssdlite320_mobilenet_v3_large",
    )


def test_export_list():
    pytest.importorskip("torch")
    r = run("export", "--list")
    assert "nano" in r.output and "fcos_resnet50_fpn" in r.output


def test_doctor_json():
    r = run("doctor", "--print-json")
    data = json.loads(r.output)
    assert data["can"]["run ONNX on CPU"] is True
    assert "python" in data and isinstance(data["advice"], list)


def test_json_means_a_report_file_in_every_command(tmp_path):
    """--json PATH writes the report and the text still prints; --print-json puts JSON on stdout."""
    js = tmp_path / "doctor.json"
    r = run("doctor", "--json", js)
    assert r.exit_code == 0 and "can:" in r.output and f"wrote {js}" in r.output
    assert json.loads(js.read_text())["can"]["run ONNX on CPU"] is True
    one_line_error(run("doctor", "--json"), "--json")  # a path is required, never a flag
    one_line_error(run("doctor", "--json", "/proc/d.json"), "/proc/d.json")
    from edgedet.cli.main import COMMANDS
    from edgedet.cli.main import cli as group

    for name in ("bench", "eval", "compare", "doctor", "inspect"):
        opt = next(o for o in group.get_command(None, name).params if "--json" in o.opts)
        assert not opt.is_flag and opt.help == "Also write the report as JSON to this file.", name
    assert "export" in COMMANDS


@pytest.mark.parametrize("name", ["infer", "bench", "eval", "serve"])
def test_backend_options_are_one_group(name):
    from edgedet.cli.main import cli as group

    params = {o.name: o for o in group.get_command(None, name).params}
    ref = {o.name: o for o in group.get_command(None, "infer").params}
    for opt in ("backend", "providers", "spinning"):
        assert params[opt].help == ref[opt].help, (name, opt)
        assert type(params[opt].type) is type(ref[opt].type), (name, opt)


def test_backend_and_providers_parse_and_refuse_the_same_way(tiny_nms, image_dir, tmp_path):
    from edgedet.cli.common import load_options

    want = {"backend": "onnxruntime", "providers": ["cpu"]}
    assert load_options(tiny_nms, "onnxruntime", ("cpu",)) == want
    r = run(
        "bench", tiny_nms, "--iters", 1, "--warmup", 0, "--backend", "ORT", "--providers", " cpu, "
    )
    assert r.exit_code == 0, r.output
    cmds = (
        ["bench", tiny_nms],
        ["eval", tiny_nms, "--data", tmp_path],
        ["infer", tiny_nms, tmp_path],
    )
    for cmd in cmds:
        one_line_error(run(*cmd, "--backend", "openvino"), "unknown backend 'openvino'")
        one_line_error(
            run(*cmd, "--providers", "openvino"), "'openvino' is not an ONNX Runtime provider"
        )
        one_line_error(run(*cmd, "--providers", ","), "names no provider")
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    one_line_error(
        run("bench", eng, "--providers", "cpu"), "--providers applies to ONNX Runtime", "m.engine"
    )
    one_line_error(
        run("compare", eng, tiny_nms, "--images", image_dir, "--providers", "cpu"),
        "runs on TensorRT",
    )


def test_ort_spinning_reaches_the_backend_and_is_refused_for_engines(
    tiny_nms, tmp_path, monkeypatch
):
    from edgedet.backends import onnxruntime as ort_backend
    from edgedet.cli.common import load_options

    assert load_options(tiny_nms, "auto", None, "off") == {"backend": "auto", "spinning": "off"}
    assert load_options(tiny_nms, "auto", None, None) == {"backend": "auto"}
    seen = []
    real = ort_backend.spinning_config
    monkeypatch.setattr(ort_backend, "spinning_config", lambda s: seen.append(s) or real(s))
    r = run("bench", tiny_nms, "--iters", 1, "--warmup", 0, "--ort-spinning", "off")
    assert r.exit_code == 0, r.output
    assert seen and set(seen) == {"off"}
    one_line_error(run("bench", tiny_nms, "--ort-spinning", "fast"), "--ort-spinning", "fast")
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    one_line_error(
        run("infer", eng, tmp_path, "--ort-spinning", "off"),
        "--ort-spinning applies to ONNX Runtime",
        "m.engine",
    )


def test_cli_entry_point_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "edgedet.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "edgedet" in out.stdout


def test_eval_full_decode_flag_opens_the_model_with_it(tiny_nms, tmp_path, monkeypatch):
    """`eval --full-decode` scores with every JPEG decoded at full size (edgedet.load's
    full_decode); without it, the runtime default (reduced decode of large JPEGs). `infer` always
    decodes in full: it draws on the original pixels."""
    import edgedet

    y, x = np.mgrid[0:1500, 0:2000]
    pic = np.stack([x * 255 // 2000, y * 255 // 1500, (x // 50 % 2) * 255], -1).astype(np.uint8)
    data = coco_folder(tmp_path / "data", pic, "big.jpg", [(1, [100, 100, 800, 600])])
    opened = []
    real = edgedet.load
    monkeypatch.setattr(
        edgedet, "load", lambda *a, **kw: opened.append(real(*a, **kw)) or opened[-1]
    )
    for extra in ([], ["--full-decode"]):
        r = run("eval", tiny_nms, "--data", data, *extra)
        assert r.exit_code == 0, r.output
    assert [det.full_decode for det in opened] == [False, True]
