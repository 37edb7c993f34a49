"""``self.storage``: an object's private transactional storage (DESIGN §5, §8).

Synchronous by design, like Cloudflare's SQLite-backed API: SQLite is in-process, and a
synchronous API leaves no await inside a read-modify-write. Writes of one turn commit
together when the turn ends (or roll back when it raises); the runtime commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..exceptions import InvalidArgument
from .database import ObjectDatabase
from .kv import KeyValueStore
from .sql import SqlStorage


class ObjectStorage:
    """Key-value and SQL storage of one object, plus its alarm."""

    def __init__(self, db: ObjectDatabase, *, sql_time_limit_ms: int = 5000) -> None:
        self._db = db
        self._kv = KeyValueStore(db)
        self.sql = SqlStorage(db, sql_time_limit_ms)
        self.alarm_changed = False

    # key-value API, delegated so that ``self.storage.get(...)`` reads naturally
    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return self._kv.get(key, default)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the ``keys`` that exist."""
        return self._kv.get_many(keys)

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-compatible ``value`` under ``key``."""
        self._kv.put(key, value)

    def put_many(self, entries: dict[str, Any]) -> None:
        """Store several entries."""
        self._kv.put_many(entries)

    def delete(self, key: str) -> bool:
        """Delete ``key``; returns whether it existed."""
        return self._kv.delete(key)

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys``; returns how many existed."""
        return self._kv.delete_many(keys)

    def list(self, **options: Any) -> dict[str, Any]:
        """Entries in key order; options ``prefix``, ``start``, ``end``, ``reverse``, ``limit``."""
        return self._kv.list(**options)

    def delete_all(self) -> None:
        """Delete every key-value entry and the alarm."""
        self._kv.delete_all()
        self.delete_alarm()

    @property
    def database_size(self) -> int:
        """Bytes the object's database uses."""
        return self._db.size()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A nested atomic block: its writes are undone if the block raises."""
        name = self._db.savepoint()
        try:
            yield
        except BaseException:
            self._db.release_savepoint(name, ok=False)
            raise
        self._db.release_savepoint(name, ok=True)

    # alarms (DESIGN §8): the time here is the truth; the runtime keeps the index.
    def set_alarm(self, when: dt.datetime | float | int) -> None:
        """Schedule ``on_alarm`` at ``when`` (aware datetime or epoch seconds); replaces any."""
        if isinstance(when, dt.datetime):
            if when.tzinfo is None:
                raise InvalidArgument("alarm datetimes must be timezone-aware")
            when = when.timestamp()
        if isinstance(when, bool) or not isinstance(when, int | float) or when != when:
            raise InvalidArgument("alarm time must be a datetime or epoch seconds")
        self._db.set_meta("alarm", float(when))
        self._db.set_meta("alarm_retry", None)
        self.alarm_changed = True

    def get_alarm(self) -> float | None:
        """The scheduled alarm time in epoch seconds, or None."""
        value = self._db.get_meta("alarm")
        return None if value is None else float(value)  # type: ignore[arg-type]

    def delete_alarm(self) -> None:
        """Cancel the alarm, if any."""
        if self._db.get_meta("alarm") is not None:
            self._db.set_meta("alarm", None)
            self._db.set_meta("alarm_retry", None)
            self.alarm_changed = True

    # schema migrations for user tables
    def migrate(self, steps: list[Callable[[SqlStorage], Any]]) -> int:
        """Run the migration steps not yet applied, tracked by ``PRAGMA user_version``.

        ``steps[i]`` upgrades the schema from version ``i`` to ``i + 1``; call it from
        ``on_start``. Returns the resulting version.
        """
        current = self._db.user_version()
        for version in range(current, len(steps)):
            with self.transaction():
                steps[version](self.sql)
                self._db.ensure_writable().execute(f"PRAGMA user_version={version + 1}")
        return max(current, len(steps))
