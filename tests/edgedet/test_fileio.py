import os

import pytest

from edgedet.errors import InputError
from edgedet.fileio import (
    atomic_path,
    atomic_write,
    check_writable,
    sha256_bytes,
    sha256_file,
    write_bytes_atomic,
)


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.onnx"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write(b"half-written")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"], "temporary file left behind"


def test_keyboard_interrupt_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.onnx"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as fh:
            fh.write(b"x" * 1000)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_renames_and_uses_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "engine.plan"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"plan")
        assert not target.exists()
    assert target.read_bytes() == b"plan"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_check_writable_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        check_writable(tmp_path)


def test_unwritable_folder_and_file_are_reported(tmp_path, monkeypatch):
    # root ignores permission bits, so stand in for the OS answer (os.access is what check_writable
    # asks)
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "m.onnx").write_bytes(b"x")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p).startswith(str(ro)) else real_access(p, mode)
    )
    with pytest.raises(InputError, match="folder .*ro is not writable"):
        check_writable(ro / "new.onnx")
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).endswith("m.onnx"))
    with pytest.raises(InputError, match="exists and is not writable"):
        check_writable(ro / "m.onnx")


def test_unwritable_parent_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create output folder"):
        check_writable(blocker / "sub" / "m.onnx")


def test_sha256(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert (
        sha256_file(p)
        == sha256_bytes(b"abc")
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
