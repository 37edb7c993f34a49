"""Helpers for tests that drive ObjectDatabase + ObjectStorage directly (no host)."""

from __future__ import annotations

import contextlib

from durable_core.storage import ObjectStorage
from durable_core.storage.database import ObjectDatabase


@contextlib.contextmanager
def turn(db: ObjectDatabase, *, commit: bool = True):
    """One turn: kept when the block returns, undone when it raises; then commit."""
    db.begin_turn()
    ok = False
    try:
        yield
        ok = True
    finally:
        db.end_turn(ok=ok)
    if commit:
        db.commit()


@contextlib.contextmanager
def reader(path):
    """Storage on a second connection: sees only what was committed to the file."""
    database = ObjectDatabase(path, token=1)
    try:
        yield ObjectStorage(database)
    finally:
        database.close()
