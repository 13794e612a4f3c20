"""`edgedet attach-nms` options added for third-party files: one-line errors, notes, --imgsz HxW."""

import onnx
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import third_party as tp  # noqa: E402

from edgedet.cli.main import cli  # noqa: E402
from edgedet.manifest import read_manifest  # noqa: E402


def attach(tmp_path, build, *args):
    src = tmp_path / "theirs.onnx"
    onnx.save(build()[1], src)
    return CliRunner().invoke(
        cli, ["attach-nms", str(src), *map(str, args)], catch_exceptions=False
    )


def one_line_error(result, *fragments):
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("edgedet: error")]
    assert len(lines) == 1, result.output
    for f in fragments:
        assert f in lines[0], lines[0]


def test_notes_say_what_was_renamed_cast_and_dropped(tmp_path):
    (tmp_path / "names.txt").write_text("background\nface\n")
    r = attach(
        tmp_path,
        tp.face_ssd,
        "--boxes",
        "boxes",
        "--scores",
        "scores",
        "--normalized",
        "--background-class",
        0,
        "--input-scale",
        255,
        "--mean",
        "127,127,127",
        "--std",
        "128,128,128",
        "--resize",
        "stretch",
        "--class-names",
        tmp_path / "names.txt",
        "-o",
        tmp_path / "face.onnx",
    )
    assert r.exit_code == 0, r.output
    assert "'boxes' -> 'byo_src_boxes'" in r.output and "background column 0 dropped" in r.output
    assert "(stretch)" in r.output and "checked on a probe image" in r.output
    r = attach(
        tmp_path,
        tp.yolov5_fp16,
        "--combined",
        "output0",
        "--box-format",
        "cxcywh",
        "--objectness",
        "-o",
        tmp_path / "v5.onnx",
    )
    assert r.exit_code == 0 and "FP16 model kept FP16 inside" in r.output


def test_imgsz_takes_height_x_width(tmp_path):
    _, model = tp.ultralytics_like(h=64, w=96)
    for d in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.Clear()
        d.dim_param = "hw"
    onnx.save(model, tmp_path / "dyn.onnx")
    r = CliRunner().invoke(
        cli,
        [
            "attach-nms",
            str(tmp_path / "dyn.onnx"),
            "--combined",
            "output0",
            "--box-format",
            "cxcywh",
            "--imgsz",
            "64x96",
            "-o",
            str(tmp_path / "o.onnx"),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "o.onnx").input.shape == (1, 3, 64, 96)
    one_line_error(
        CliRunner().invoke(
            cli,
            [
                "attach-nms",
                str(tmp_path / "dyn.onnx"),
                "--combined",
                "output0",
                "--imgsz",
                "64by96",
                "-o",
                str(tmp_path / "o.onnx"),
            ],
        ),
        "--imgsz",
    )


def test_refusals_are_one_line(tmp_path):
    one_line_error(
        attach(
            tmp_path,
            tp.yolox_raw,
            "--combined",
            "output",
            "--box-format",
            "cxcywh",
            "--objectness",
            "-o",
            tmp_path / "x.onnx",
        ),
        "--decode yolox",
    )
    assert not (tmp_path / "x.onnx").exists()  # nothing written for a refused file
    one_line_error(attach(tmp_path, tp.yolox_raw, "--combined", "output"), "-o OUTPUT.onnx")
    one_line_error(
        attach(
            tmp_path,
            tp.yolox_raw,
            "--combined",
            "output",
            "--decode",
            "yolox",
            "--strides",
            "8,x",
            "-o",
            tmp_path / "x.onnx",
        ),
        "--strides",
    )
    r = attach(
        tmp_path,
        tp.yolox_raw,
        "--combined",
        "output",
        "--box-format",
        "cxcywh",
        "--objectness",
        "--no-check",
        "-o",
        tmp_path / "x.onnx",
    )
    assert r.exit_code == 0  # the user said they know better
