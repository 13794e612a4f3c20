"""benchmarks/ort_spinning.py: one worker process per spinning setting, driven over pipes."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def test_one_pass_times_every_setting_in_its_own_process(tiny_nms, tiny_raw, image_dir):
    from benchmarks.ort_spinning import SETTINGS, one_pass
    from edgedet.backends.onnxruntime import spinning_config

    cases = {"tiny": (tiny_nms, tiny_raw, image_dir / "b.jpg")}
    row = one_pass(cases, rounds=2, calls=2, gap=0.0, load=0)["tiny"]
    assert set(row) == set(SETTINGS)
    for setting, figures in row.items():
        # each worker's session carries its own setting (read back from ONNX Runtime)
        for key, value in spinning_config(setting).items():
            assert figures["session_config"][key] == value, setting
        assert 0 < figures["e2e_min_ms"] <= figures["e2e_p50_ms"]
        assert 0 < figures["model_min_ms"] <= figures["model_p50_ms"]
        ratio = figures["e2e_p50_ms"] / row["off"]["e2e_p50_ms"]
        assert figures["e2e_vs_off"] == pytest.approx(ratio, rel=0.01)
    assert row["on"]["session_config"]["session.force_spinning_stop"] is None
