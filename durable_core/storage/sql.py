"""The SQL API of an object's storage, and the authorizer that keeps user SQL in bounds.

User SQL runs with an authorizer (DESIGN §5) that denies the runtime's own ``_do_*``
tables, transaction control (the runtime owns transactions), ATTACH/DETACH and every
PRAGMA not on a short read-only whitelist; a progress handler enforces a time limit.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from ..exceptions import SqlError, StorageLimitExceeded
from .database import RESERVED_PREFIX, ObjectDatabase

MAX_SQL_LENGTH = 100_000
MAX_PARAMS = 100

_WRITE_ACTIONS = {
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_CREATE_TEMP_INDEX,
    sqlite3.SQLITE_CREATE_TEMP_TABLE,
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
    sqlite3.SQLITE_CREATE_TEMP_VIEW,
    sqlite3.SQLITE_CREATE_TRIGGER,
    sqlite3.SQLITE_CREATE_VIEW,
    sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_DROP_INDEX,
    sqlite3.SQLITE_DROP_TABLE,
    sqlite3.SQLITE_DROP_TEMP_INDEX,
    sqlite3.SQLITE_DROP_TEMP_TABLE,
    sqlite3.SQLITE_DROP_TEMP_TRIGGER,
    sqlite3.SQLITE_DROP_TEMP_VIEW,
    sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_DROP_VIEW,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_ALTER_TABLE,
    sqlite3.SQLITE_REINDEX,
    sqlite3.SQLITE_ANALYZE,
    sqlite3.SQLITE_CREATE_VTABLE,
    sqlite3.SQLITE_DROP_VTABLE,
}
# Actions whose second argument is the table acted on (the first names the index, the
# trigger or the database): a trigger or an ALTER on a runtime table must be denied too.
_TABLE_IN_ARG2 = {
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_CREATE_TEMP_INDEX,
    sqlite3.SQLITE_DROP_INDEX,
    sqlite3.SQLITE_DROP_TEMP_INDEX,
    sqlite3.SQLITE_CREATE_TRIGGER,
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
    sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_DROP_TEMP_TRIGGER,
    sqlite3.SQLITE_ALTER_TABLE,
}
_DENIED_ACTIONS = {
    sqlite3.SQLITE_TRANSACTION: "transaction statements (the runtime commits each turn)",
    sqlite3.SQLITE_SAVEPOINT: "savepoints (use storage.transaction())",
    sqlite3.SQLITE_ATTACH: "ATTACH",
    sqlite3.SQLITE_DETACH: "DETACH",
}
# Read-only introspection pragmas; user_version is read here and written by the
# migration helper (storage.migrate), never by user SQL.
_PRAGMA_WHITELIST = {
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "quick_check",
    "user_version",
    "page_count",
    "page_size",
    "freelist_count",
}


def authorize(db: ObjectDatabase, action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    """SQLite authorizer callback; only user statements are restricted."""
    if not db.user_sql:
        return sqlite3.SQLITE_OK
    denied = _DENIED_ACTIONS.get(action)
    if denied:
        db.denied_reason = f"{denied} are not allowed"
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name not in _PRAGMA_WHITELIST or (name == "user_version" and arg2 is not None):
            db.denied_reason = f"PRAGMA {arg1} is not allowed"
            return sqlite3.SQLITE_DENY
        if arg2 and arg2.lower().startswith(RESERVED_PREFIX):
            db.denied_reason = f"table {arg2} is reserved for the runtime"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
        db.denied_reason = "load_extension is not allowed"
        return sqlite3.SQLITE_DENY
    for name in (arg1, arg2 if action in _TABLE_IN_ARG2 else None):
        if name and name.lower().startswith(RESERVED_PREFIX):
            db.denied_reason = f"table {name} is reserved for the runtime"
            return sqlite3.SQLITE_DENY
    if action in _WRITE_ACTIONS and not db.write_ready:
        # Prepared before the segment's write transaction (or the turn's savepoint)
        # began: ask for a re-run after ensure_writable(), since the authorizer may not
        # touch the connection itself.
        db.needs_write = True
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def install_authorizer(db: ObjectDatabase, conn: sqlite3.Connection) -> None:
    """Set the authorizer of ``db`` on ``conn``, which expires every prepared statement.

    SQLite authorizes a statement only while preparing it, and sqlite3 reuses cached
    prepared statements. Installing the authorizer again before each user statement
    makes SQLite prepare (and so authorize) a cached one afresh: the runtime's fence
    update sent verbatim, or a user write prepared in an earlier segment.
    """
    conn.set_authorizer(functools.partial(authorize, db))


class SqlCursor:
    """The result of one statement: rows as dicts, plus counters."""

    def __init__(self, columns: list[str], rows: list[tuple], rows_written: int) -> None:
        self.column_names = columns
        self._rows = rows
        self.rows_read = len(rows)  # rows returned; sqlite3 cannot count rows scanned
        self.rows_written = rows_written

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (dict(zip(self.column_names, r, strict=True)) for r in self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def fetchall(self) -> list[dict[str, Any]]:
        """Every row as a dict keyed by column name."""
        return list(self)

    def raw(self) -> list[tuple]:
        """Every row as a tuple."""
        return list(self._rows)

    def one(self) -> dict[str, Any]:
        """The single row; raises SqlError unless there is exactly one."""
        if len(self._rows) != 1:
            raise SqlError(f"expected exactly one row, got {len(self._rows)}")
        return dict(zip(self.column_names, self._rows[0], strict=True))


class SqlStorage:
    """``storage.sql``: run SQL against the object's own database."""

    def __init__(self, db: ObjectDatabase, time_limit_ms: int = 5000) -> None:
        self._db = db
        self._time_limit = time_limit_ms / 1000

    def execute(self, sql: str, *params: Any) -> SqlCursor:
        """Run one statement with ``?`` parameters; returns its rows.

        Raises:
            StorageLimitExceeded: statement over 100 KB, more than 100 parameters,
                or the database over its size limit.
            SqlError: a syntax error, a denied statement or one past the time limit.
        """
        if not isinstance(sql, str):
            raise SqlError("SQL must be a string")
        if len(sql) > MAX_SQL_LENGTH or len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_LENGTH:
            raise StorageLimitExceeded(f"SQL statement is longer than {MAX_SQL_LENGTH} bytes")
        if len(params) > MAX_PARAMS:
            raise StorageLimitExceeded(f"more than {MAX_PARAMS} bound parameters")
        db = self._db
        if db.conn is None and not db.path.exists():
            db.ensure_writable()  # user SQL creates its tables: the store is made here
        try:
            return self._run(sql, params)
        except _NeedsWrite:
            db.ensure_writable()
            return self._run(sql, params)

    def _run(self, sql: str, params: tuple) -> SqlCursor:
        db = self._db
        conn = db.conn or db.open()
        install_authorizer(db, conn)  # no cached statement skips the authorizer
        deadline = time.monotonic() + self._time_limit
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        db.user_sql, db.needs_write, db.denied_reason = True, False, None
        before = conn.total_changes
        try:
            cur = conn.execute(sql, params)
            rows = cur.fetchall()
            columns = [d[0] for d in cur.description or ()]
        except sqlite3.Error as exc:
            if db.needs_write:
                raise _NeedsWrite from exc
            raise _sql_error(exc, db.denied_reason) from exc
        finally:
            db.user_sql = False
            conn.set_progress_handler(None, 0)
        return SqlCursor(columns, rows, conn.total_changes - before)


class _NeedsWrite(Exception):
    """Internal: the statement writes and the segment has no write transaction yet."""


def _sql_error(exc: sqlite3.Error, denied: str | None) -> Exception:
    text = str(exc)
    if denied:
        return SqlError(f"not authorized: {denied}")
    if "interrupted" in text:
        return SqlError("SQL statement exceeded its time limit")
    if "full" in text:
        return StorageLimitExceeded(f"object database is full: {text}")
    if "too many SQL variables" in text or "too big" in text or "too long" in text:
        return StorageLimitExceeded(text)
    return SqlError(text)
