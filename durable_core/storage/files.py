"""Where object files live, the embedded directory lock, and the open-store cap.

Paths come from the ID's hex only (``<dir>/<namespace>/<id[:2]>/<id>.sqlite3``), never
from user text. A WAL database holds three file descriptors, so open stores are capped
(least recently used closed first) and the soft RLIMIT_NOFILE is raised at host start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import StorageDirLocked

if TYPE_CHECKING:
    from .database import ObjectDatabase

logger = logging.getLogger(__name__)

_SAFE_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]+")


def object_path(storage_dir: Path, namespace: str, hex_id: str) -> Path:
    """The SQLite file of one object."""
    if not _SAFE_NAMESPACE.fullmatch(namespace) or namespace in (".", ".."):
        raise ValueError(f"namespace {namespace!r} cannot name a directory")
    return storage_dir / namespace / hex_id[:2] / f"{hex_id}.sqlite3"


def remove_object_files(path: Path) -> None:
    """Delete an object's database with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


class StorageDirLock:
    """An exclusive lock on a storage directory for one embedded process."""

    def __init__(self, storage_dir: Path) -> None:
        self.path = storage_dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StorageDirLocked naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageDirLocked(
                f"storage directory {self.path.parent} is in use by another embedded "
                f"process (pid {holder}); stop it, point VAR_DIR elsewhere, or configure "
                "REDIS_URL to run several processes as a cluster"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class OpenStoreCache:
    """Caps how many object databases hold open connections (LRU close)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._open: OrderedDict[int, ObjectDatabase] = OrderedDict()

    def touch(self, db: ObjectDatabase) -> None:
        """Record that ``db`` is in use; close the least recently used beyond the cap."""
        key = id(db)
        self._open[key] = db
        self._open.move_to_end(key)
        if len(self._open) <= self.capacity:
            return
        for old in list(self._open.values()):
            if len(self._open) <= self.capacity:
                break
            if old is db or old.in_write_tx:
                continue  # never close a store in the middle of a segment
            old.close()  # reopened on its next use; close() calls forget()

    def forget(self, db: ObjectDatabase) -> None:
        """Stop tracking ``db`` (it was closed by its owner)."""
        self._open.pop(id(db), None)

    def __len__(self) -> int:
        return len(self._open)


def raise_nofile_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (DESIGN §5)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        logger.debug("raised RLIMIT_NOFILE from %s to %s", soft, hard)
