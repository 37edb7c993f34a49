"""Single-owner audit log: what each host committed and emitted, and when (issue 11).

Off unless the environment variable ``DURABLE_AUDIT_LOG`` names a file, and then each
process appends one JSON line per event with one ``write`` on an ``O_APPEND`` descriptor
(nothing buffered in the process, so a ``kill -9`` loses no line it wrote). Times are
``time.monotonic()`` (CLOCK_MONOTONIC on Linux), comparable across the processes of one
machine, which is all a cluster spans (DESIGN §2). ``tests/chaos/audit.py`` reads the
logs and checks that per object only one token at a time committed, and that tokens
only grew.

Lines: ``{"ev": "claim", "k", "t", "s", "c", "p"}`` for an activation that claimed the
storage fence (``s`` before, ``c`` after its commit), and ``{"ev": "seg", "k", "t", "s",
"c", "e", "w", "p"}`` for a committed segment: ``s`` before its fence check, ``c`` after its
commit (the output gate's lease check came just before), ``e`` after its replies and
frames were released, ``w`` whether it wrote.

Call sites guard on ``ENABLED`` so that the log costs one global lookup when off.
"""

from __future__ import annotations

import json
import os

_PATH = os.environ.get("DURABLE_AUDIT_LOG") or None
ENABLED = _PATH is not None
_fd: int | None = None


def _write(record: dict) -> None:
    global _fd
    if _fd is None:
        assert _PATH is not None
        _fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    record["p"] = os.getpid()
    os.write(_fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())


def claim(key: str, token: int, start: float, committed: float) -> None:
    """An activation claimed the object's storage fence for ``token``."""
    _write({"ev": "claim", "k": key, "t": token, "s": start, "c": committed})


def segment(
    key: str, token: int, start: float, committed: float, emitted: float, wrote: bool
) -> None:
    """A segment of ``key`` committed under ``token`` and released its output."""
    _write(
        {"ev": "seg", "k": key, "t": token, "s": start, "c": committed, "e": emitted, "w": wrote}
    )
