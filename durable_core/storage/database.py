"""One object's SQLite file: schema, transactions, savepoints and the fence check.

The fence check lives here and nowhere else (DESIGN §4): activation requires the stored
fence to be strictly lower than this host's token and raises it inside a write
transaction; every later write transaction re-reads it under the write lock and requires
it to equal the token. A host that lost its lease therefore cannot commit, whatever its
in-memory state believes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import failpoints
from ..exceptions import ObjectReset, StaleOwner, StorageError, StorageLimitExceeded

if TYPE_CHECKING:
    from .files import OpenStoreCache

logger = logging.getLogger(__name__)

RESERVED_PREFIX = "_do_"


class ObjectTombstoned(Exception):
    """The file was destroyed by the holder of ``token`` (DESIGN §5): it is dead and
    must be removed, never claimed. Internal to activation."""

    def __init__(self, token: int) -> None:
        super().__init__(f"object storage was destroyed by token {token}")
        self.token = token


_SCHEMA = """
CREATE TABLE IF NOT EXISTS _do_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _do_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _do_calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL UNIQUE,
    reply TEXT NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS _do_sockets (
    ws_id TEXT PRIMARY KEY, front TEXT NOT NULL, tags TEXT NOT NULL,
    attachment TEXT, accepted REAL NOT NULL) WITHOUT ROWID;
"""


class ObjectDatabase:
    """The SQLite connection of one active object, owned by one fencing token."""

    def __init__(
        self,
        path: Path,
        token: int,
        *,
        synchronous: str = "NORMAL",
        max_size: int = 1 << 30,
        floor: int = 0,
        cache: OpenStoreCache | None = None,
    ) -> None:
        self.path = path
        self.token = token
        self.floor = floor  # fence floor from the object record, for a file not yet made
        self._cache = cache
        self.synchronous = synchronous
        self.max_size = max_size
        self.conn: sqlite3.Connection | None = None
        self.in_write_tx = False
        self.turn_active = False
        self.turn_savepoint = False
        self.turn_wrote = False
        self.user_sql = False  # the authorizer restricts only user statements
        self.needs_write = False  # set by the authorizer: re-run after ensure_writable()
        self.denied_reason: str | None = None
        self.write_guard: Callable[[], None] | None = None  # raises when writes are not allowed
        self._savepoint_seq = 0
        # Open ``storage.transaction()`` savepoints, and the commit count they belong to:
        # a commit (at an open gate) ends every savepoint of the segment.
        self._user_savepoints: list[str] = []
        self.commits = 0
        self.retired = False  # closed for good: this activation ended
        # Whether this token claimed the file (stored fence < token, strictly): at
        # activation, or, for a file not yet made then, at its first write. Until it
        # has, a write claims rather than checks equality: after a lease store lost its
        # counter, two hosts may hold the same token for an object with no file yet.
        self.claimed = False
        self._claim_pending = False  # claimed in the open transaction, not yet committed

    # -- opening -----------------------------------------------------------------

    def exists(self) -> bool:
        """True when the object's file exists (it was written at least once)."""
        return self.path.exists()

    def open(self) -> sqlite3.Connection:
        """Open the connection (idempotent); the file must exist or is created here."""
        if self.conn is not None:
            return self.conn
        if self.retired:
            raise ObjectReset("this activation of the object has ended; retry")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. timeout=0: never sleep
        # the event loop on a lock; callers retry asynchronously (DESIGN §5).
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={max(16, self.max_size // page_size)}")
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 100_000)
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            conn.close()
            if _is_busy(exc):
                raise StaleOwner("object storage is locked by another process") from exc
            raise StorageError(f"cannot open object storage: {exc}") from exc
        from .sql import install_authorizer  # the authorizer belongs to the SQL API

        install_authorizer(self, conn)
        self.conn = conn
        if self._cache is not None:
            self._cache.touch(self)
        return conn

    def close(self, *, retire: bool = False) -> None:
        """Close the connection, rolling back anything uncommitted; ``retire``: for good
        (the activation ended, nothing may reopen it)."""
        self.retired = self.retired or retire
        if self.conn is None:
            return
        if self.in_write_tx:
            self.rollback()
        self.conn.close()
        self.conn = None
        if self._cache is not None:
            self._cache.forget(self)

    # -- the fence -----------------------------------------------------------------

    def stored_fence(self) -> int | None:
        """The fence the file accepted last, or None when it has none yet."""
        row = self.open().execute("SELECT value FROM _do_meta WHERE key='fence'").fetchone()
        return None if row is None else int(row[0])

    async def activate(self, *, busy_deadline: float = 10.0) -> None:
        """Claim the file for this token: stored fence < token, strictly, then store it.

        Waits asynchronously (never sleeping the loop) while another process holds the
        write lock. Raises StaleOwner (with ``stored_fence``) when the file already
        accepted this token or a higher one.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + busy_deadline
        delay = 0.001
        while True:
            try:
                self.open().execute("BEGIN IMMEDIATE")
                break
            except (sqlite3.OperationalError, StaleOwner) as exc:
                if isinstance(exc, sqlite3.OperationalError) and not _is_busy(exc):
                    raise StorageError(f"cannot begin activation: {exc}") from exc
                if loop.time() > give_up:
                    raise StaleOwner("object storage stayed locked by another process") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        self.in_write_tx = True
        try:
            self._claim_fence(self.floor)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def _claim_fence(self, floor: int) -> None:
        destroyed = self.conn.execute(  # type: ignore[union-attr]
            "SELECT value FROM _do_meta WHERE key='destroyed'"
        ).fetchone()
        if destroyed is not None:
            raise ObjectTombstoned(int(destroyed[0]))
        stored = self.stored_fence()
        current = max(stored or 0, floor)
        if current >= self.token:
            exc = StaleOwner(f"storage fence {current} is not below this host's token {self.token}")
            exc.stored_fence = current  # type: ignore[attr-defined]
            raise exc
        self.conn.execute(  # type: ignore[union-attr]
            "INSERT OR REPLACE INTO _do_meta(key, value) VALUES ('fence', ?)", (self.token,)
        )
        self._claim_pending = True

    def check_fence(self) -> None:
        """Raise StaleOwner unless the stored fence equals this token and this activation
        claimed it (a file that appeared unclaimed was made by someone else meanwhile)."""
        stored = self.stored_fence()
        if stored != self.token or not self.claimed:
            exc = StaleOwner(f"storage fence is {stored}, this host holds token {self.token}")
            exc.stored_fence = stored or 0  # type: ignore[attr-defined]
            raise exc

    # -- transactions ----------------------------------------------------------------

    @property
    def write_ready(self) -> bool:
        """True when a write now lands in the segment's transaction and the turn's savepoint."""
        return (
            self.in_write_tx
            and not self.transaction_lost
            and (self.turn_savepoint or not self.turn_active)
        )

    @property
    def transaction_lost(self) -> bool:
        """True when SQLite rolled the segment back by itself.

        SQLite may undo the whole transaction on an error inside it (SQLITE_FULL, or an
        INSERT interrupted by the time limit): the segment's earlier turns are gone, and
        a further statement would run in autocommit mode, outside the fence check.
        """
        return self.in_write_tx and self.conn is not None and not self.conn.in_transaction

    def ensure_writable(self) -> sqlite3.Connection:
        """Make the next statement part of the segment's write transaction and the turn.

        The first write of a segment begins ``BEGIN IMMEDIATE`` and checks the fence
        under the write lock (DESIGN §4: checked in the same transaction that commits).
        The first write of an activation that found no file claims it like an
        activation, at the record's floor, but only while the file has no fence at all:
        a file another owner made and committed to meanwhile is theirs (StaleOwner, and
        the activation starts over on what they wrote).
        """
        if self.write_guard is not None:
            self.write_guard()
        conn = self.conn or self.open()
        if self.transaction_lost:
            raise StorageError("the write transaction was undone by an earlier error")
        if not self.in_write_tx:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise StaleOwner("object storage is locked by another process") from exc
                raise StorageError(f"cannot begin a write: {exc}") from exc
            self.in_write_tx = True
            try:
                if self.claimed:
                    self.check_fence()
                else:
                    stored = self.stored_fence()
                    if stored is not None:
                        exc = StaleOwner(
                            f"storage fence {stored} was set by another owner after this "
                            "activation found no file"
                        )
                        exc.stored_fence = stored  # type: ignore[attr-defined]
                        raise exc
                    self._claim_fence(self.floor)
            except BaseException:
                self.rollback()
                raise
        if self.turn_active and not self.turn_savepoint:
            conn.execute("SAVEPOINT _do_turn")
            self.turn_savepoint = True
        self.turn_wrote = True
        return conn

    def begin_turn(self) -> None:
        """Mark the start of a turn; its first write opens its savepoint."""
        if self.conn is not None and self._cache is not None:
            self._cache.touch(self)
        self.turn_active = True
        self.turn_savepoint = False
        self.turn_wrote = False

    def end_turn(self, ok: bool) -> bool:
        """Keep (ok) or undo the turn's writes; returns whether the turn kept writes."""
        wrote = self.turn_wrote and ok
        if self.turn_savepoint and self.conn is not None and not self.transaction_lost:
            if not ok:
                self.conn.execute("ROLLBACK TO _do_turn")
            self.conn.execute("RELEASE _do_turn")
        self.turn_active = False
        self.turn_savepoint = False
        self.turn_wrote = False
        self._user_savepoints.clear()  # released or undone with the turn's savepoint
        return wrote

    def commit(self) -> None:
        """Commit the segment's write transaction, if one is open."""
        if not self.in_write_tx:
            return
        if self.transaction_lost:
            self.rollback()
            raise StorageError("the write transaction was undone by an error; nothing committed")
        try:
            failpoints.check("storage.commit")
            self.conn.execute("COMMIT")  # type: ignore[union-attr]
        except sqlite3.OperationalError as exc:
            self.rollback()
            raise _storage_error(exc) from exc
        finally:
            self.in_write_tx = False
            self._user_savepoints.clear()
        self.commits += 1
        if self._claim_pending:
            self.claimed, self._claim_pending = True, False

    def rollback(self) -> None:
        """Abandon the segment's write transaction."""
        if self.conn is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.in_write_tx = False
        self._claim_pending = False
        self.turn_savepoint = False
        self._user_savepoints.clear()

    def savepoint(self, *, runtime: bool = False) -> str:
        """Open a nested savepoint for ``storage.transaction()``; returns its name.

        A ``runtime`` savepoint (around a socket handler, which may await other objects)
        may end with a commit at an open gate; a user's may not (``in_savepoint``).
        """
        self.ensure_writable()
        self._savepoint_seq += 1
        name = f"_do_{'rt' if runtime else 'user'}_{self._savepoint_seq}"
        self.conn.execute(f"SAVEPOINT {name}")  # type: ignore[union-attr]
        self._user_savepoints.append(name)
        return name

    @property
    def in_savepoint(self) -> bool:
        """True while a user's ``savepoint()`` of the current segment is open."""
        return any(name.startswith("_do_user_") for name in self._user_savepoints)

    def release_savepoint(self, name: str, ok: bool) -> bool:
        """Close a savepoint from ``savepoint()``, undoing it when ``ok`` is false.

        Returns False when the savepoint no longer exists: the segment committed (the
        turn awaited another object) or was rolled back meanwhile, so there is nothing
        left to keep or undo here.
        """
        if name not in self._user_savepoints or self.transaction_lost:
            return False
        del self._user_savepoints[self._user_savepoints.index(name) :]
        try:
            if not ok:
                self.conn.execute(f"ROLLBACK TO {name}")  # type: ignore[union-attr]
            self.conn.execute(f"RELEASE {name}")  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc
        return True

    # -- destroy ---------------------------------------------------------------------

    def mark_destroyed(self) -> bool:
        """Write the tombstone into the segment's transaction (DESIGN §5): it commits
        with the turn that destroyed the object, fenced like any commit. Anyone who
        later opens the file, even through a handle opened before it was unlinked, finds
        the tombstone and never claims it. False when there is no file to destroy."""
        if self.conn is None and not self.path.exists():
            return False
        conn = self.ensure_writable()  # BEGIN IMMEDIATE and the fence check (or claim)
        failpoints.check("storage.destroy")
        conn.execute(
            "INSERT OR REPLACE INTO _do_meta(key, value) VALUES ('destroyed', ?)", (self.token,)
        )
        return True

    def fold_wal(self) -> None:
        """Copy the WAL into the main file, so that removing the files in any order
        cannot bring back an earlier state."""
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def write(self, sql: str, params: Any = (), *, many: bool = False) -> sqlite3.Cursor:
        """Run a runtime write in the current segment; SQLite errors become StorageError."""
        conn = self.ensure_writable()
        try:
            return conn.executemany(sql, params) if many else conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc

    # -- meta ------------------------------------------------------------------------

    def get_meta(self, key: str) -> object | None:
        """A runtime value from ``_do_meta`` (None when absent or no file)."""
        if self.conn is None and not self.path.exists():
            return None
        row = self.open().execute("SELECT value FROM _do_meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: object | None) -> None:
        """Write (or with None delete) a runtime value in the current write segment."""
        if value is None:
            self.write("DELETE FROM _do_meta WHERE key=?", (key,))
        else:
            self.write("INSERT OR REPLACE INTO _do_meta(key, value) VALUES (?, ?)", (key, value))

    def user_version(self) -> int:
        """The schema version recorded by ``ObjectStorage.migrate`` (0 without a file)."""
        if self.conn is None and not self.path.exists():
            return 0
        return int(self.open().execute("PRAGMA user_version").fetchone()[0])

    def size(self) -> int:
        """Bytes used by the database (pages in use times page size)."""
        if self.conn is None and not self.path.exists():
            return 0
        conn = self.open()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * conn.execute("PRAGMA page_size").fetchone()[0]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _storage_error(exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if "full" in text:
        return StorageLimitExceeded(f"object database is full (limit reached): {text}")
    return StorageError(text)
