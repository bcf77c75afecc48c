"""One way to write files that a reader never sees half-written: write beside the target,
then rename over it (atomic on one filesystem); on failure nothing of the attempt is left."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, make_parent: bool = True) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` when the block ends
    without an exception, removed otherwise. Permissions follow the umask (as for a plain
    ``open``), not mkstemp's 0600: shared checkpoints and results stay readable."""
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike, data, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(data, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A hidden ``.<name>.partial`` folder beside ``path`` to fill; it replaces ``path`` (an
    older folder of that name included) when the block ends without an exception and is
    removed otherwise, so a folder named ``path`` is always a finished result. While the block
    runs ``.<name>.lock`` is held: a second writer of the same ``path`` (another process) is
    refused with FileExistsError instead of deleting the first one's partial folder."""
    path = Path(path)
    with _exclusive(path.with_name(f".{path.name}.lock"), path):
        partial = path.with_name(f".{path.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            yield partial
            if path.exists():
                shutil.rmtree(path)
            os.replace(partial, path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


@contextlib.contextmanager
def _exclusive(lock: Path, path: Path) -> Iterator[None]:
    import fcntl
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileExistsError(f"{path}: another process is writing it right now; wait "
                                  f"for it to finish or choose another output folder") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
