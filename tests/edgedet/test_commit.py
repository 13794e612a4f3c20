"""The artifact + manifest pair is one transaction: interrupted at any step, in any way, the pair on
disk is the complete previous one or the complete new one (never a new artifact with an old
manifest, never an artifact without its manifest), and nothing temporary is left once it is read
again.

Interrupts are injected deterministically at each step of ``edgedet.fileio.commit_pair`` through
its test hook: as an exception (Ctrl-C raised in Python, ENOSPC), as a real SIGINT delivered to the
process (deferred across the renames), and as a hard kill (``os._exit``: no cleanup runs),
in-process and through real ``edgedet quantize`` / ``edgedet export`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiny_models

from edgedet import fileio
from edgedet.errors import ManifestError, WriteError
from edgedet.manifest import (
    InputInfo,
    Manifest,
    manifest_path,
    pair_complete,
    read_manifest,
    write_artifact,
)

ROOT = Path(__file__).parents[2]
STEPS = fileio.COMMIT_STEPS


def _manifest(tag: str) -> Manifest:
    return Manifest(
        family="tiny",
        model=tag,
        class_names=["a"],
        input=InputInfo(shape=(1, 3, 64, 64)),
        output_kind="nms",
        nms_where="graph",
    )


def state(path: Path) -> str:
    """'old', 'new' or 'none' when the pair is complete (or absent); anything else fails the
    test."""
    side = manifest_path(path)
    if not path.exists() and not side.exists():
        return "none"
    assert path.exists() and side.exists(), (
        f"half a pair on disk: {sorted(p.name for p in path.parent.iterdir())}"
    )
    assert pair_complete(path, side), "the manifest does not describe the artifact beside it"
    tag = json.loads(side.read_text())["model"]
    assert path.read_bytes() == tag.encode() * 100, "the manifest belongs to other bytes"
    return tag


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def hook():
    """Set fileio's commit hook for one test."""

    def set_hook(fn):
        fileio._commit_hook = fn

    yield set_hook
    fileio._commit_hook = None


def _raise_at(step, exc):
    def fn(name):
        if name == step:
            raise exc

    return fn


@pytest.mark.parametrize("had_old", [True, False], ids=["over-old-pair", "first-write"])
@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), OSError(28, "No space left on device")], ids=["ctrl-c", "enospc"]
)
@pytest.mark.parametrize("step", STEPS)
def test_exception_at_each_step_leaves_a_complete_pair(tmp_path, hook, step, exc, had_old):
    art = tmp_path / "m.onnx"
    if had_old:
        write_artifact(art, b"old" * 100, _manifest("old"))
    hook(_raise_at(step, exc))
    done = STEPS.index(step) >= STEPS.index("sidecar-renamed")
    # a full disk before the commit is one line for the user (WriteError); once committed it is
    # raised as is
    expected = WriteError if isinstance(exc, OSError) and not done else type(exc)
    with pytest.raises(expected):
        write_artifact(art, b"new" * 100, _manifest("new"))
    hook(None)
    got = state(art)
    # before both renames: the previous pair (or nothing); after them: the new pair
    assert got == ("new" if done else "old" if had_old else "none")
    assert leftovers(tmp_path) == [], "temporary, journal or backup files left"


@pytest.mark.parametrize("step", STEPS)
def test_real_sigint_during_commit_is_deferred_until_the_pair_is_complete(tmp_path, hook, step):
    art = tmp_path / "m.onnx"
    write_artifact(art, b"old" * 100, _manifest("old"))
    hook(lambda name: os.kill(os.getpid(), signal.SIGINT) if name == step else None)
    with pytest.raises(KeyboardInterrupt):
        write_artifact(art, b"new" * 100, _manifest("new"))
    hook(None)
    # before the renames start the interrupt stops the write; once they start it waits for the end
    assert state(art) == ("old" if step == "temps-written" else "new")
    assert leftovers(tmp_path) == []


HARD_KILL = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from edgedet import fileio
    from edgedet.manifest import InputInfo, Manifest, write_artifact
    step = sys.argv[2]
    fileio._commit_hook = lambda name: os._exit(9) if name == step else None
    m = Manifest(family="tiny", model="new", class_names=["a"],
                 input=InputInfo(shape=(1, 3, 64, 64)), output_kind="nms", nms_where="graph")
    write_artifact(Path(sys.argv[1]), b"new" * 100, m)
""")


@pytest.mark.parametrize("step", STEPS)
def test_hard_kill_at_each_step_is_recovered_on_the_next_read(tmp_path, step):
    """kill -9 / power loss: no cleanup runs; the journal lets the next reader restore or keep."""
    art = tmp_path / "m.onnx"
    write_artifact(art, b"old" * 100, _manifest("old"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", HARD_KILL, str(art), step], env=env, timeout=60)
    assert proc.returncode == 9
    manifest = read_manifest(art)  # recovers first
    expected = "new" if STEPS.index(step) >= STEPS.index("sidecar-renamed") else "old"
    assert manifest.model == expected and state(art) == expected
    assert leftovers(tmp_path) == []


def test_recovery_of_a_first_write_cut_after_the_artifact_rename(tmp_path, hook):
    """No previous pair and killed between the renames: the lone new artifact is removed, not
    guessed."""
    art = tmp_path / "m.onnx"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", HARD_KILL, str(art), "artifact-renamed"], env=env, timeout=60
    )
    assert art.exists() and not manifest_path(art).exists()  # the cut state itself
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(art)
    assert state(art) == "none" and leftovers(tmp_path) == []


def test_pair_checked_writable_before_anything_is_written(tmp_path):
    art = tmp_path / "m.onnx"
    write_artifact(art, b"old" * 100, _manifest("old"))
    manifest_path(art).unlink()
    manifest_path(art).mkdir()  # the manifest's name is taken by a folder
    with pytest.raises(Exception, match="is a directory"):
        write_artifact(art, b"new" * 100, _manifest("new"))
    assert art.read_bytes() == b"old" * 100 and leftovers(tmp_path) == []


# -- real processes: the CLI commands, SIGINT delivered at each step of their commit --------------

CLI_WITH_SIGINT_AT = textwrap.dedent("""
    import os, signal, sys
    from edgedet import fileio
    step = sys.argv[1]
    fileio._commit_hook = lambda name: os.kill(os.getpid(), signal.SIGINT) if name == step else None
    sys.path.insert(0, sys.argv[2])
    if sys.argv[3] == "export":
        from tiny_torch import register_tiny
        register_tiny()
    sys.argv = ["edgedet", *sys.argv[3:]]
    from edgedet.cli.main import main
    main()
""")


def _run_cli_with_sigint(step: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", CLI_WITH_SIGINT_AT, step, str(ROOT / "tests" / "helpers"), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _pair_tag(path: Path) -> str:
    side = manifest_path(path)
    assert path.exists() and side.exists() and pair_complete(path, side), "incomplete pair"
    return (
        json.loads(side.read_text())["created"] + json.loads(side.read_text())["precision"]["mode"]
    )


@pytest.mark.parametrize("step", STEPS)
def test_quantize_process_interrupted_at_each_commit_step(tmp_path, step):
    pytest.importorskip("onnxruntime")
    src = tiny_models.save(tiny_models.raw_model(), tmp_path / "raw.onnx", kind="raw")
    out = tmp_path / "raw.q.onnx"
    # the previous good output pair, written in-process (cheaper than another interpreter)
    from click.testing import CliRunner

    from edgedet.cli.main import cli

    first = CliRunner().invoke(cli, ["quantize", str(src), "--fp16", "-o", str(out)])
    assert first.exit_code == 0, first.output
    old = (out.read_bytes(), manifest_path(out).read_bytes())
    proc = _run_cli_with_sigint(step, ["quantize", str(src), "--fp16", "-o", str(out)], tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (
        proc.stderr
    )
    _pair_tag(out)
    now = (out.read_bytes(), manifest_path(out).read_bytes())
    if step == "temps-written":
        assert now == old, "the previous pair changed although the interrupt came before the commit"
    assert leftovers(tmp_path) == []


def test_export_process_interrupted_between_its_two_renames(tmp_path):
    """Ctrl-C between the artifact's and the manifest's rename (where 8 of 39 runs once lost the
    pair)."""
    pytest.importorskip("torch")
    step = "artifact-renamed"
    out = tmp_path / "tiny.onnx"
    argv = ["export", "--model", "tiny", "--nms", "none", "--no-verify", "-o", str(out)]
    proc = _run_cli_with_sigint(step, argv, tmp_path)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    # the renames had begun: the interrupt waited for the pair
    assert read_manifest(out).model == "tiny"
    assert leftovers(tmp_path) == []


def test_timed_sigints_to_quantize_never_leave_a_mixed_pair(tmp_path):
    """A few real Ctrl-Cs at arbitrary moments (not only at the hook points)."""
    pytest.importorskip("onnxruntime")
    src = tiny_models.save(tiny_models.raw_model(), tmp_path / "raw.onnx", kind="raw")
    out = tmp_path / "raw.q.onnx"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "edgedet.cli", "quantize", str(src), "--fp16", "-o", str(out)]
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode == 0
    for delay in (1.0, 1.4, 1.8, 2.2):  # after interpreter start-up, at different stages of the run
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        # -SIGINT: the signal landed as the interpreter was exiting; a shell reports that as 130 too
        assert proc.returncode in (0, 130, -signal.SIGINT), err
        assert "Traceback" not in err, err
        _pair_tag(out)
        assert leftovers(tmp_path) == []


# -- a full disk, as the user meets it ------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_full_disk_during_quantize_is_one_line_and_keeps_the_previous_pair(tmp_path, hook):
    pytest.importorskip("onnxruntime")
    from click.testing import CliRunner

    from edgedet.cli.main import cli

    src = tiny_models.save(tiny_models.raw_model(), tmp_path / "raw.onnx", kind="raw")
    out = tmp_path / "raw.fp16.onnx"
    assert CliRunner().invoke(cli, ["quantize", str(src), "--fp16", "-o", str(out)]).exit_code == 0
    old = (out.read_bytes(), manifest_path(out).read_bytes())
    hook(lambda name: _enospc() if name == "temps-written" else None)
    r = CliRunner().invoke(cli, ["quantize", str(src), "--fp16", "-o", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert (
        r.stderr.strip().splitlines() == [r.stderr.strip()]
        and "No space left on device" in r.stderr
    )
    assert (out.read_bytes(), manifest_path(out).read_bytes()) == old and leftovers(tmp_path) == []


def test_full_disk_during_infer_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from edgedet.cli.main import cli

    model = tiny_models.save(tiny_models.nms_model(), tmp_path / "m.onnx")
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((48, 80, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    out = tmp_path / "out"
    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    r = CliRunner().invoke(cli, ["infer", str(model), str(tmp_path / "imgs"), "-o", str(out)])
    monkeypatch.undo()
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.strip() and ln.strip() != "detecting"]
    assert len(errors) == 1 and "No space left on device" in errors[0], r.stderr
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


@pytest.mark.parametrize(
    "rewrapped", [RuntimeError, ImportError], ids=["runtime-error", "import-error"]
)
def test_ctrl_c_rewrapped_by_a_library_still_exits_130(tmp_path, monkeypatch, rewrapped):
    """Ctrl-C inside `import onnxruntime` once surfaced as another exception: rc 1 and a
    traceback."""
    pytest.importorskip("onnxruntime")
    from click.testing import CliRunner

    import edgedet.onnx.quantize.api as qapi
    from edgedet.cli.main import cli

    def interrupted_import(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            raise rewrapped(
                "partially initialized module 'onnxruntime' (most likely due to a circular import)"
            ) from None

    monkeypatch.setattr(qapi, "detection_placement", interrupted_import)
    src = tiny_models.save(tiny_models.raw_model(), tmp_path / "raw.onnx", kind="raw")
    r = CliRunner().invoke(cli, ["quantize", str(src), "--fp16", "-o", str(tmp_path / "q.onnx")])
    assert r.exit_code == 130, r.output
    assert (
        r.stderr.strip().startswith("edgedet: interrupted")
        and len(r.stderr.strip().splitlines()) == 1
    )
    assert "Traceback" not in r.output and not (tmp_path / "q.onnx").exists()


def test_recovery_from_another_working_directory(tmp_path, monkeypatch):
    """The journal names files absolutely: a reader started elsewhere restores the same pair."""
    art = tmp_path / "sub" / "m.onnx"
    monkeypatch.chdir(tmp_path)
    write_artifact(Path("sub/m.onnx"), b"old" * 100, _manifest("old"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", HARD_KILL, "sub/m.onnx", "artifact-renamed"],
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    monkeypatch.chdir(art.parent)
    assert read_manifest("m.onnx").model == "old" and state(art) == "old"
    assert leftovers(art.parent) == []
