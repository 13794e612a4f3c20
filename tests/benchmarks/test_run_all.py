"""benchmarks/run_all.py (make bench): a process per step, a record of each, failures counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_all_runs_a_step_and_records_it(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--only", "resize", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    steps = json.loads((out / "run_all.json").read_text())["steps"]
    assert [(s["step"], s["exit_status"]) for s in steps] == [("resize", 0)]
    res = json.loads((out / "resize.json").read_text())
    assert res["benchmark"] == "resize" and res["machine"]["cores"] >= 1
    for row in res["results"].values():  # both sides measured, the ratio is of those figures
        assert row["opencv_ms"] > 0 and row["pillow_ms"] > 0
        ratio = row["pillow_ms"] / row["opencv_ms"]
        assert abs(row["pillow_over_opencv"] - ratio) < 0.1 * ratio


def test_run_all_reports_a_failing_step(tmp_path):
    """A step that fails (here: bench on a corrupt model file) makes the whole run exit 1."""
    out = tmp_path / "out"
    (out / "work").mkdir(parents=True)
    (out / "work" / "nano.onnx").write_bytes(b"not an onnx file")  # reused as is; bench refuses it
    r = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--only", "bench", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "failed: bench" in r.stdout, r.stdout + r.stderr
    steps = json.loads((out / "run_all.json").read_text())["steps"]
    assert steps[0]["step"] == "bench" and steps[0]["exit_status"] != 0
