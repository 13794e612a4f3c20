"""Stream fixtures: nano exported to ONNX (fixed and dynamic batch) and a moving-shapes video."""

import pytest


@pytest.fixture(scope="session")
def nano_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    from exporters.pipeline import ExportOptions, export

    out = tmp_path_factory.mktemp("nano") / "nano.onnx"
    export(ExportOptions(model="nano"), out)
    return out


@pytest.fixture(scope="session")
def nano_dyn_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    from exporters.pipeline import ExportOptions, export

    out = tmp_path_factory.mktemp("nano_dyn") / "nano_dyn.onnx"
    export(ExportOptions(model="nano", dynamic_batch=True), out)
    return out


@pytest.fixture(scope="session")
def sequence(tmp_path_factory):
    """(video path, frames, ground truth) of a 60-frame 480x320 moving-shapes sequence, H.264."""
    pytest.importorskip("av")
    from exporters.nano.sequence import render_sequence, write_video

    frames, truth = render_sequence(0, 60)
    path = write_video(frames, tmp_path_factory.mktemp("video") / "shapes.mp4")
    return path, frames, truth
