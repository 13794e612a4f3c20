"""Atomic artifact writes and content hashes.

An artifact is never seen half-written: bytes go to a temporary file in the
destination folder and are renamed over the target only once complete, so an
error or Ctrl-C leaves the previous file (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from edgedet.errors import InputError, WriteError


def _default_mode(path: Path) -> int:
    """Permissions a plain open() would give (mkstemp's 0600 would surprise users and servers)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before hours of work, if ``path`` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and not path.is_dir() and not path.is_file():
        raise InputError(
            f"output path {path} is not a regular file (a device or special file); choose another"
            " -o path"
        )
    if str(path.resolve()).startswith(("/proc/", "/sys/", "/dev/")):
        raise InputError(
            f"output path {path} is inside a system folder ({str(path.resolve()).split('/')[1]}); "
            "choose another -o path"
        )
    if path.is_dir():
        raise InputError(
            f"output path {path} is a directory; give a file name such as {path / 'model.onnx'}"
        )
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create output folder {parent}: {exc.strerror}; choose another -o path"
            ) from None
    if not os.access(parent, os.W_OK):
        raise InputError(
            f"output folder {parent} is not writable; choose another -o path or fix its permissions"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(
            f"output file {path} exists and is not writable; remove it or choose another -o path"
        )
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path``
    keeps its previous content. For tools that write files themselves.
    """
    path = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent or "."
        )
    except OSError as exc:
        raise write_error(path, exc) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode(path))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise write_error(path, exc) from None
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; flushed, synced and renamed on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def write_error(path: Path, exc: OSError) -> WriteError:
    """An OSError while writing ``path`` as one line saying what to do; the previous file is
    kept."""
    hint = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space (disk quota)",
        errno.EROFS: "the filesystem is read-only",
        errno.EFBIG: "the file is too large for this filesystem",
    }
    return WriteError(
        f"cannot write {path}: {exc.strerror or exc};"
        f" {hint.get(exc.errno, 'check its permissions')} or choose another output path (nothing"
        " was changed)"
    )


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: same inode if both exist, same resolved path
    otherwise."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_not_input(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]
) -> None:
    """Refuse to write over one of the command's own inputs (or its sidecar manifest)."""
    inputs = [Path(i) for i in inputs if i is not None]
    for out in map(Path, outputs):
        for src in inputs:
            if same_file(out, src):
                raise InputError(
                    f"output {out} is the same file as the input {src}: writing it would destroy"
                    " the input; choose another output path"
                )


def check_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), sidecar: bool = True
) -> Path:
    """check_writable for an artifact and its ``.json`` sidecar, and that neither is one of
    ``inputs`` (nor an input's sidecar): ``quantize m.onnx -o m.onnx`` would replace the FP32
    model."""
    path = check_writable(path)
    outs = [path, Path(f"{path}.json")] if sidecar else [path]
    if sidecar:
        check_writable(outs[1])
    srcs = [Path(i) for i in inputs if i is not None]
    check_not_input(outs, srcs + [Path(f"{s}.json") for s in srcs if s.is_file()])
    return path


# ---- the artifact + sidecar pair as one transaction ---------------------------------------------
#
# Two files cannot be renamed at once, so the commit keeps a journal (written before the temporary
# files, removed after the last rename) and hard links to the previous pair (no copy). A commit that
# is cut (exception, SIGKILL, power loss) leaves the journal; ``recover_pair`` then puts the
# previous pair back unless the new one is already complete. SIGINT/SIGTERM are deferred across the
# renames so Ctrl-C never cuts it. Every state a reader can act on is old-complete or new-complete.

COMMIT_STEPS = (
    "temps-written",
    "backups-linked",
    "artifact-renamed",
    "sidecar-renamed",
    "journal-removed",
)
_commit_hook: Callable[[str], None] | None = (
    None  # tests: called at each step (may raise or os._exit)
)


def _step(name: str) -> None:
    if _commit_hook is not None:
        _commit_hook(name)


def journal_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(f".{artifact.name}.commit")


def _backup_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.prev")


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then deliver them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            old[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in pending[:1]:
            if sig == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), sig)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _link_or_copy(src: Path, dst: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dst)
    try:
        os.link(src, dst)
    except OSError:  # filesystems without hard links
        import shutil

        shutil.copy2(src, dst)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by another user
    return True


def recover_pair(
    artifact: str | os.PathLike, sidecar: str | os.PathLike, complete: Callable[[Path, Path], bool]
) -> str | None:
    """Finish a commit cut short: keep the new pair if ``complete(artifact, sidecar)``, else put the
    previous pair back. Returns what was done ("kept-new", "restored-old") or None (no journal)."""
    artifact, sidecar = Path(artifact), Path(sidecar)
    journal = journal_path(artifact)
    if not journal.exists():
        return None
    absolute = {Path(os.path.abspath(artifact)): artifact, Path(os.path.abspath(sidecar)): sidecar}
    try:
        record = json.loads(journal.read_text())
        # journal paths are absolute
        had = {absolute.get(Path(p), Path(p)) for p in record.get("had", [])}
        temps = [Path(p) for p in record.get("temps", [])]
        writer = int(record.get("pid", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        had, temps, writer = {artifact, sidecar}, [], 0
    if writer and writer != os.getpid() and _alive(writer):
        return None  # another process is writing this pair right now: not ours to undo
    new_ok = artifact.exists() and sidecar.exists() and complete(artifact, sidecar)
    for target in (artifact, sidecar):
        backup = _backup_path(target)
        if new_ok:
            continue
        if target in had and backup.exists():
            os.replace(backup, target)
        elif target not in had:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)  # the cut commit created it: there was no previous one
    for leftover in temps + [_backup_path(artifact), _backup_path(sidecar)]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    os.unlink(journal)
    _fsync_dir(artifact.parent)
    return "kept-new" if new_ok else "restored-old"


def commit_pair(
    artifact: str | os.PathLike,
    sidecar: str | os.PathLike,
    write_artifact: Callable[[Path], None],
    sidecar_for: Callable[[Path], bytes],
    complete: Callable[[Path, Path], bool],
) -> Path:
    """Write ``artifact`` and its ``sidecar`` as one transaction.

    ``write_artifact(tmp)`` writes the artifact's bytes into a temporary path; ``sidecar_for(tmp)``
    returns the sidecar's bytes (it may hash the finished temporary file). Both are complete on disk
    before the previous pair is touched; the previous pair survives any failure before the end.
    """
    artifact, sidecar = check_writable(artifact), check_writable(sidecar)
    recover_pair(artifact, sidecar, complete)
    temps: list[Path] = []
    journal = journal_path(artifact)
    committed = False
    try:
        for target in (artifact, sidecar):
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            temps.append(Path(tmp))
        # the journal first: a kill at any later point is undone by the next reader or writer
        had = [str(p) for p in (artifact, sidecar) if p.exists()]
        write_bytes_atomic(
            journal,
            json.dumps(
                {
                    "had": [os.path.abspath(p) for p in had],
                    "temps": [os.path.abspath(t) for t in temps],
                    "pid": os.getpid(),
                }
            ).encode(),
        )
        write_artifact(temps[0])
        sidecar_bytes = sidecar_for(temps[0])
        for tmp, data in ((temps[0], None), (temps[1], sidecar_bytes)):
            with open(tmp, "r+b" if data is None else "wb") as fh:
                if data is not None:
                    fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(temps[0], _default_mode(artifact))
        os.chmod(temps[1], _default_mode(sidecar))
        _step("temps-written")
        with deferred_interrupts():
            for p in (artifact, sidecar):
                if str(p) in had:
                    _link_or_copy(p, _backup_path(p))
            _fsync_dir(artifact.parent)
            _step("backups-linked")
            os.replace(temps[0], artifact)
            _step("artifact-renamed")
            os.replace(temps[1], sidecar)
            committed = True  # both renames done: from here a failure keeps the new pair
            _step("sidecar-renamed")
            for p in (artifact, sidecar):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_backup_path(p))
            os.unlink(journal)
            _fsync_dir(artifact.parent)
            _step("journal-removed")
    except BaseException as exc:
        if journal.exists():  # roll back, or forward when both renames were done
            with contextlib.suppress(OSError):
                recover_pair(artifact, sidecar, lambda a, s: committed)
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and not committed:
            raise write_error(artifact, exc) from None
        raise
    return artifact
