"""The key-value API of an object's storage (DESIGN §5).

Keys are strings up to 2 KiB (UTF-8), values any JSON-compatible value up to 2 MiB
serialized. The data lives in ``_do_kv``, a table user SQL cannot reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..exceptions import InvalidArgument, StorageLimitExceeded
from .database import ObjectDatabase

MAX_KEY_BYTES = 2048
MAX_VALUE_BYTES = 2 * 1024 * 1024


def check_key(key: object) -> str:
    """Validate a storage key; raises InvalidArgument or StorageLimitExceeded."""
    if not isinstance(key, str):
        raise InvalidArgument(f"storage keys are strings, not {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidArgument("storage keys must be valid Unicode text") from exc
    if size > MAX_KEY_BYTES:
        raise StorageLimitExceeded(f"storage key is longer than {MAX_KEY_BYTES} bytes")
    return key


def encode_value(value: Any) -> str:
    """Serialize a value to JSON, enforcing JSON-compatibility and the size limit."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"storage values must be JSON-compatible: {exc}") from exc
    try:
        size = len(text.encode("utf-8"))  # SQLite stores UTF-8: no lone surrogates
    except UnicodeEncodeError as exc:
        raise InvalidArgument("storage values must be valid Unicode text") from exc
    if size > MAX_VALUE_BYTES:
        raise StorageLimitExceeded(f"storage value is larger than {MAX_VALUE_BYTES} bytes")
    return text


class KeyValueStore:
    """get/put/delete/list over one object's ``_do_kv`` table."""

    def __init__(self, db: ObjectDatabase) -> None:
        self._db = db

    def _reader(self):
        db = self._db
        if db.conn is None and not db.path.exists():
            return None  # never written: reading creates no file
        return db.conn or db.open()

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        check_key(key)
        conn = self._reader()
        if conn is None:
            return default
        row = conn.execute("SELECT value FROM _do_kv WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of ``keys`` that exist, in the order asked."""
        keys = [check_key(k) for k in keys]
        conn = self._reader()
        if conn is None or not keys:
            return {}
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 100):
            chunk = keys[start : start + 100]
            marks = ",".join("?" * len(chunk))
            for k, v in conn.execute(
                f"SELECT key, value FROM _do_kv WHERE key IN ({marks})", chunk
            ):
                found[k] = json.loads(v)
        return {k: found[k] for k in keys if k in found}

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` in the current turn."""
        check_key(key)
        text = encode_value(value)
        self._db.write("INSERT OR REPLACE INTO _do_kv(key, value) VALUES (?, ?)", (key, text))

    def put_many(self, entries: dict[str, Any]) -> None:
        """Store every entry of ``entries`` in the current turn."""
        rows = [(check_key(k), encode_value(v)) for k, v in entries.items()]
        if rows:
            sql = "INSERT OR REPLACE INTO _do_kv(key, value) VALUES (?, ?)"
            self._db.write(sql, rows, many=True)

    def delete(self, key: str) -> bool:
        """Delete ``key``; returns whether it existed."""
        check_key(key)
        if self._reader() is None:
            return False
        return self._db.write("DELETE FROM _do_kv WHERE key=?", (key,)).rowcount > 0

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys``; returns how many existed."""
        keys = [check_key(k) for k in keys]
        if not keys or self._reader() is None:
            return 0
        return sum(self._db.write("DELETE FROM _do_kv WHERE key=?", (k,)).rowcount for k in keys)

    def delete_all(self) -> None:
        """Delete every key-value entry (the SQL tables are left alone)."""
        if self._reader() is not None:
            self._db.write("DELETE FROM _do_kv")

    def list(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Entries in key order: ``start`` inclusive, ``end`` exclusive, ``prefix`` filtered."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidArgument("list limit must be a non-negative integer")
        for bound in (prefix, start, end):
            if bound is not None:
                check_key(bound)  # bad input fails alike whether or not the store exists
        conn = self._reader()
        if conn is None or limit == 0:
            return {}
        where, params = [], []
        if prefix:
            where.append("key >= ?")
            params.append(prefix)
            upper = _prefix_upper_bound(prefix)
            if upper is not None:
                where.append("key < ?")
                params.append(upper)
        if start is not None:
            where.append("key >= ?")
            params.append(start)
        if end is not None:
            where.append("key < ?")
            params.append(end)
        sql = "SELECT key, value FROM _do_kv"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY key" + (" DESC" if reverse else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return {k: json.loads(v) for k, v in conn.execute(sql, params)}

    def count(self) -> int:
        """Number of key-value entries."""
        conn = self._reader()
        return 0 if conn is None else conn.execute("SELECT count(*) FROM _do_kv").fetchone()[0]


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            # Skip the surrogate block: no stored key contains one (check_key).
            return "".join(chars) + chr(0xE000 if last == 0xD7FF else last + 1)
    return None
