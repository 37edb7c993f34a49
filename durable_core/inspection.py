"""Inspection: what an object holds and who runs it (DESIGN §10, CONTRACT § Inspection).

An active object is inspected by its owner, as a turn: an ``inspect`` event that the
router delivers like any call, to this host or to the host holding the lease, so the
reader sees what the object sees and the read is serialized with its turns. An object
that no host runs is read from a read-only snapshot of its file instead, without being
activated (its ``on_start`` does not run, no lease is taken). Evict acts on an active
object only; delete storage and fire-alarm-now go through the owner and activate the
object if needed, so the fence guards them like any other write.

Every read is bounded: key-value entries and table rows come in keyset pages (after a
key, after a rowid), counts stop at ``COUNT_CAP`` (an inspection runs on the owner's
event loop, so it must not scan a huge table), listings of records use the
``(namespace, object_id)`` index, and lease holders of a page come from one pipelined
Redis round trip.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.db.models import Count, Q, Subquery

from . import limits, operations
from .conf import get_storage_dir, is_cluster_mode
from .exceptions import InvalidArgument, NoHostError, ObjectNotActive, StorageError
from .ids import ObjectId
from .models import ObjectRecord
from .storage.files import object_path

if TYPE_CHECKING:
    from .host import ObjectHost
    from .turns import ActiveObject

# Actions that never activate an object: on a host where it is not active they raise
# ObjectNotActive (the caller then reads the file, or has nothing to evict).
PASSIVE_ACTIONS = frozenset({"read", "evict", "move"})
ACTIONS = PASSIVE_ACTIONS | {"destroy", "fire_alarm", "limit", "activate"}

KV_PAGE = 100
KV_PAGE_MAX = 1000
ROWS_PAGE = 20
ROWS_PAGE_MAX = 500
OBJECTS_PAGE = 50
OBJECTS_PAGE_MAX = 500
MAX_TABLES = 50
MAX_SOCKETS_LISTED = 100
COUNT_CAP = 100_000  # rows counted per table (and sockets read for tags) at most
MAX_CELL_CHARS = 2000  # longer strings and blobs are cut in pages (the full value stays)
MAX_VALUE_CHARS = 4096  # longer key-value JSON texts are shown as a cut string


# -- reading one object's SQLite file (owner connection or read-only snapshot) ----------


def read_options(
    kv_after: str | None = None,
    kv_limit: int = KV_PAGE,
    table: str | None = None,
    rows_after: int | None = None,
    rows_limit: int = ROWS_PAGE,
) -> dict[str, Any]:
    """Validated paging options of a read (InvalidArgument on bad ones)."""
    if not isinstance(kv_limit, int) or not 1 <= kv_limit <= KV_PAGE_MAX:
        raise InvalidArgument(f"kv_limit must be 1-{KV_PAGE_MAX}")
    if not isinstance(rows_limit, int) or not 1 <= rows_limit <= ROWS_PAGE_MAX:
        raise InvalidArgument(f"rows_limit must be 1-{ROWS_PAGE_MAX}")
    if rows_after is not None and (not isinstance(rows_after, int) or rows_after < 0):
        raise InvalidArgument("rows_after must be a non-negative integer")
    return {
        "kv_after": kv_after,
        "kv_limit": kv_limit,
        "table": table,
        "rows_after": rows_after,
        "rows_limit": rows_limit,
    }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cell(value: Any) -> Any:
    """A table cell as JSON: long text cut, blobs as hex, non-finite floats as text."""
    if isinstance(value, bytes):
        shown = value[: MAX_CELL_CHARS // 2].hex()
        return f"x'{shown}'" + (
            f"… ({len(value)} bytes)" if len(value) > MAX_CELL_CHARS // 2 else ""
        )
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + f"… ({len(value)} chars)"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _kv_value(text: str) -> tuple[Any, bool]:
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS] + f"… ({len(text)} chars)", True
    return json.loads(text), False


def read_storage(conn: sqlite3.Connection | None, options: dict[str, Any]) -> dict[str, Any]:
    """What one object's database holds: size, alarm, sockets, a page of key-value
    entries, and its SQL tables with columns, row counts and a page of rows each.

    ``conn`` is the owner's connection (inside a turn) or a read-only snapshot; None
    for an object that never wrote (no file).
    """
    empty = {
        "bytes": 0,
        "keys": 0,
        "kv": {},
        "kv_next": None,
        "kv_truncated": [],
        "tables": [],
    }
    if conn is None:
        return {
            "storage": empty,
            "alarm": None,
            "fence": None,
            "limit": None,
            "websockets": {"count": 0, "tags": {}, "sockets": []},
        }
    meta = dict(
        conn.execute(
            "SELECT key, value FROM _do_meta WHERE key IN ('alarm', 'fence', 'limit')"
        ).fetchall()
    )
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    storage: dict[str, Any] = {"bytes": (pages - free) * page_size}

    # Key-value entries: a keyset page over the primary key, never an OFFSET.
    kv_after, kv_limit = options.get("kv_after"), options.get("kv_limit", KV_PAGE)
    if kv_after is None:
        storage["keys"], storage["keys_capped"] = _capped_count(conn, "_do_kv")
        rows = conn.execute(
            "SELECT key, value FROM _do_kv ORDER BY key LIMIT ?", (kv_limit + 1,)
        ).fetchall()
    else:
        storage["keys"] = None  # counted on the first page only
        rows = conn.execute(
            "SELECT key, value FROM _do_kv WHERE key > ? ORDER BY key LIMIT ?",
            (kv_after, kv_limit + 1),
        ).fetchall()
    more = len(rows) > kv_limit
    rows = rows[:kv_limit]
    storage["kv"], storage["kv_truncated"] = {}, []
    for key, text in rows:
        value, cut = _kv_value(text)
        storage["kv"][key] = value
        if cut:
            storage["kv_truncated"].append(key)
    storage["kv_next"] = rows[-1][0] if more else None

    storage["tables"] = _read_tables(conn, options)

    sockets = conn.execute(
        "SELECT ws_id, front, tags, attachment FROM _do_sockets ORDER BY ws_id LIMIT ?",
        (MAX_SOCKETS_LISTED,),
    ).fetchall()
    count, _ = _capped_count(conn, "_do_sockets")
    tags: Counter[str] = Counter()  # from the first COUNT_CAP sockets
    for (tag_list,) in conn.execute("SELECT tags FROM _do_sockets LIMIT ?", (COUNT_CAP,)):
        tags.update(json.loads(tag_list))
    websockets = {
        "count": count,
        "tags": dict(tags.most_common(100)),
        "sockets": [
            {"id": ws_id, "front": front, "tags": json.loads(t), "attachment": attachment}
            for ws_id, front, t, attachment in sockets
        ],
    }
    alarm = meta.get("alarm")
    fence = meta.get("fence")
    limit = meta.get("limit")
    return {
        "storage": storage,
        "alarm": None if alarm is None else float(alarm),
        "fence": None if fence is None else int(fence),
        "limit": None if limit is None else json.loads(limit),
        "websockets": websockets,
    }


def _capped_count(conn: sqlite3.Connection, table: str) -> tuple[int, bool]:
    """Rows of ``table`` counted up to ``COUNT_CAP`` (and whether it has more): an
    inspection runs on the owner's loop and must not scan a huge table."""
    (count,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT ?)", (COUNT_CAP + 1,)
    ).fetchone()
    return min(count, COUNT_CAP), count > COUNT_CAP


def _read_tables(conn: sqlite3.Connection, options: dict[str, Any]) -> list[dict[str, Any]]:
    """User tables (never the runtime's ``_do_*`` ones), each with a page of rows."""
    names = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' "
            "AND name NOT LIKE '\\_do\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name LIMIT ?",
            (MAX_TABLES,),
        )
    ]
    limit = options.get("rows_limit", ROWS_PAGE)
    tables = []
    for name in names:
        quoted = _quote(name)
        columns = [
            {"name": col[1], "type": col[2], "notnull": bool(col[3]), "pk": bool(col[5])}
            for col in conn.execute(f"PRAGMA table_info({quoted})")
        ]
        count, capped = _capped_count(conn, quoted)
        after = options.get("rows_after") if options.get("table") == name else None
        rows, next_cursor = _page_rows(conn, quoted, after, limit)
        tables.append(
            {
                "name": name,
                "rows": count,
                "rows_capped": capped,
                "columns": columns,
                "page": {"after": after, "rows": rows, "next": next_cursor},
            }
        )
    return tables


def _page_rows(
    conn: sqlite3.Connection, quoted: str, after: int | None, limit: int
) -> tuple[list[list[Any]], int | None]:
    """A page of rows: keyset by rowid (``after`` is a rowid), or by OFFSET for a table
    WITHOUT ROWID (``after`` is then a row number)."""
    try:
        found = conn.execute(
            f"SELECT rowid, * FROM {quoted} WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (-(2**63) if after is None else after, limit + 1),
        ).fetchall()
        more = len(found) > limit
        found = found[:limit]
        rows = [[_cell(v) for v in row[1:]] for row in found]
        return rows, (found[-1][0] if more else None)
    except sqlite3.OperationalError:  # WITHOUT ROWID: no rowid to page by
        offset = after or 0
        found = conn.execute(
            f"SELECT * FROM {quoted} LIMIT ? OFFSET ?", (limit + 1, offset)
        ).fetchall()
        more = len(found) > limit
        rows = [[_cell(v) for v in row] for row in found[:limit]]
        return rows, (offset + limit if more else None)


def _read_snapshot_sync(object_id: ObjectId, options: dict[str, Any]) -> dict[str, Any]:
    path = object_path(get_storage_dir(), object_id.namespace, object_id.hex)
    if not path.exists():
        return read_storage(None, options)
    # mode=ro: nothing is written, no checkpoint runs; WAL readers see a committed state.
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            return read_storage(conn, options)
        finally:
            conn.close()
    except sqlite3.Error as exc:  # deleted meanwhile, or locked past the timeout
        raise StorageError(f"cannot read the object's file: {exc}") from exc


_read_snapshot = sync_to_async(_read_snapshot_sync, thread_sensitive=False)


# -- the owner's side: an inspection turn ------------------------------------------------


async def inspect_turn(active: ActiveObject, action: str, payload: str) -> Any:
    """Run an inspection action inside one of ``active``'s turns (called by turns.py)."""
    options = json.loads(payload) if payload else {}
    if action == "read":
        db = active.db
        conn = db.conn if db.conn is not None else (db.open() if db.exists() else None)
        data = read_storage(conn, options or read_options())
        data["lease"] = lease_of(active)
        data["source"] = "owner"
        data["limit"] = limits.current(active)
        return data
    if action == "evict":
        active.request_abort("evicted by staff")
        return {"evicted": True}
    if action == "destroy":
        for ws in active.sockets.all():
            ws.close(1000, "object deleted")  # the frames leave with this turn's commit
        active.request_destroy()
        return {"deleted": True}
    if action == "fire_alarm":
        if active.storage.get_alarm() is None:
            return {"alarm": None}
        # Due now: the commit schedules the alarm timer at once, and the alarm then runs
        # as an ordinary alarm turn (retries and backoff included).
        now = time.time()
        active.storage.set_alarm(now)
        return {"alarm": now}
    if action == "limit":  # stored with the object: it follows it (limits.py)
        return {"limit": limits.apply(active, options.get("limit"))}
    if action == "move":
        if options["host"] != active.host.host_id:  # already there: nothing to do
            operations.request_move(active, str(options["host"]))
        return {"from": active.host.host_id}
    if action == "activate":
        return {"owner": active.host.host_id}
    raise InvalidArgument(f"unknown inspection action {action!r}")


def lease_of(active: ActiveObject) -> dict[str, Any]:
    """The lease as the owner holds it; ``expires_in`` is its local (earlier) deadline."""
    return {
        "owner": active.lease.host_id,
        "token": active.lease.token,
        "expires_in": round(max(0.0, active.lease.deadline - time.monotonic()), 3),
    }


# -- the caller's side ----------------------------------------------------------------------


async def _send(object_id: ObjectId, action: str, payload: dict[str, Any]) -> Any:
    from .router import get_router

    return await get_router().inspect(object_id, action, json.dumps(payload))


async def ainspect(object_id: ObjectId, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything about one object: through its owner when active, else its file."""
    options = options or read_options()
    try:
        data = await _send(object_id, "read", options)
    except (ObjectNotActive, NoHostError):
        data = await _read_snapshot(object_id, options)
        holders = await aholders([object_id.key])
        lease = holders.get(object_id.key)
        data["lease"] = lease or {"owner": None, "token": data["fence"], "expires_in": None}
        data["source"] = "snapshot"
    return data


async def aevict(object_id: ObjectId) -> bool:
    """Evict the object after its current turn (``ctx.abort``); False if not active."""
    try:
        await _send(object_id, "evict", {})
    except ObjectNotActive:
        return False
    return True


async def adestroy(object_id: ObjectId) -> None:
    """Delete the object's storage through its owner (its sockets are closed first); the
    record stays, marked deleted, as the fence floor."""
    await _send(object_id, "destroy", {})


async def afire_alarm(object_id: ObjectId) -> float | None:
    """Make the object's alarm due now; returns the new time, None when it has none."""
    return (await _send(object_id, "fire_alarm", {}))["alarm"]


# -- leases, hosts and live figures ------------------------------------------------------------


async def aholders(keys: list[str]) -> dict[str, dict[str, Any]]:
    """Lease holders of objects (``ns:hex``), in one round trip; absent when free."""
    from .host import get_host

    if not keys:
        return {}
    host = get_host()
    if not is_cluster_mode():
        if host is None:
            return {}
        return {
            key: lease_of(active)
            for key in keys
            if (active := host.active.get(key)) is not None and not active.closing
        }
    from .router import get_router

    store, _registry = get_router().cluster_parts()
    found = await store.get_holders(keys)
    return {
        key: {"owner": holder.host_id, "token": holder.token, "expires_in": expires}
        for key, (holder, expires) in zip(keys, found, strict=True)
        if holder is not None
    }


def local_figures(host: ObjectHost) -> dict[str, dict[str, int]]:
    """Per-namespace figures of this process: active objects, sockets on this front, and
    objects with a socket here. Published in the host's heartbeat (cluster mode)."""
    from .consumers import get_front

    active: Counter[str] = Counter(
        a.object_id.namespace for a in host.active.values() if not a.closing
    )
    sockets: Counter[str] = Counter()
    socket_objects: Counter[str] = Counter()
    for key, count in get_front().counts_by_object().items():
        namespace = key.rsplit(":", 1)[0]
        sockets[namespace] += count
        socket_objects[namespace] += 1
    return {
        "namespaces": dict(active),
        "sockets": dict(sockets),
        "socket_objects": dict(socket_objects),
    }


async def alist_hosts() -> list[dict[str, Any]]:
    """Every known host (CONTRACT: id, pid, channel, started, objects, alive)."""
    from .host import get_host

    host = get_host()
    keys = ("id", "pid", "channel", "started", "objects", "alive")
    if not is_cluster_mode():
        if host is None:
            return []
        return [
            {
                "id": host.host_id,
                "pid": os.getpid(),
                "channel": None,
                "started": host.started_at,
                "objects": len(host.active),
                "alive": host.running,
            }
        ]
    from .router import get_router

    _store, registry = get_router().cluster_parts()
    return [{k: h.get(k) for k in keys} for h in await registry.list_hosts()]


async def alive_figures() -> dict[str, dict[str, int]]:
    """Per-namespace live figures summed over every live host (this one in embedded
    mode): ``namespaces`` (active objects), ``sockets``, ``socket_objects``."""
    from .host import get_host

    total: dict[str, Counter[str]] = {
        "namespaces": Counter(),
        "sockets": Counter(),
        "socket_objects": Counter(),
    }
    if not is_cluster_mode():
        host = get_host()
        entries = [local_figures(host)] if host is not None else []
    else:
        from .router import get_router

        _store, registry = get_router().cluster_parts()
        entries = [h for h in await registry.list_hosts() if h.get("alive")]
    for entry in entries:
        for name, counter in total.items():
            counter.update(entry.get(name) or {})
    return {name: dict(counter) for name, counter in total.items()}


# -- records ----------------------------------------------------------------------------


async def anamespaces() -> list[dict[str, Any]]:
    """Every namespace with stored objects or a registered class: record and active
    counts (one grouped query over the records, one look at the hosts)."""
    from .registry import get_registered_classes

    counts: dict[str, int] = {}
    rows = (
        ObjectRecord.objects.filter(deleted=False)
        .values("namespace")
        .annotate(n=Count("id"))
        .order_by()
    )
    async for row in rows:
        counts[row["namespace"]] = row["n"]
    live = (await alive_figures())["namespaces"]
    names = sorted(set(counts) | set(get_registered_classes()) | set(live))
    return [{"namespace": n, "objects": counts.get(n, 0), "active": live.get(n, 0)} for n in names]


def _prefix_range(field: str, prefix: str) -> Q:
    # A range instead of LIKE: SQLite's LIKE is case-insensitive and cannot use the index.
    return Q(**{f"{field}__gte": prefix, f"{field}__lt": prefix + "\U0010ffff"})


_HEX = re.compile(r"[0-9a-fA-F]{1,64}")


def search_filter(q: str) -> Q:
    """Records whose name starts with ``q``, or whose id does when ``q`` is hex: names
    often look like hex (``cafe1234``, device serials), so a hex ``q`` searches both
    (issue 16 §8). The one search rule of the REST API and the admin."""
    found = _prefix_range("name", q)
    if _HEX.fullmatch(q):
        found |= _prefix_range("object_id", q.lower())
    return found


def records_page(namespace: str, q: str = "", after: str | None = None, limit: int = OBJECTS_PAGE):
    """The queryset of one page of a namespace's records, each page one index range:
    in id order over ``(namespace, object_id)``, or, searching a name prefix, in name
    order over ``(namespace, name)`` (whose entries end with the row id, the tie-break).
    A hex ``q`` searches name and id prefixes together, in id order (two index ranges;
    the matches are sorted, not the table). ``after`` is the last page's last id."""
    rows = ObjectRecord.objects.filter(namespace=namespace, deleted=False)
    if q and not _HEX.fullmatch(q):
        rows = rows.filter(search_filter(q))
        if after:
            last = rows.filter(object_id=after).values_list("name", "pk")[:1]
            # (name, pk) > (last name, last pk), with the last row found by a subquery.
            rows = rows.filter(
                Q(name__gt=Subquery(last.values("name")))
                | Q(name=Subquery(last.values("name")), pk__gt=Subquery(last.values("pk")))
            )
        return rows.order_by("name", "pk")[: limit + 1]
    if q:
        rows = rows.filter(search_filter(q))
    if after:
        rows = rows.filter(object_id__gt=after)
    return rows.order_by("object_id")[: limit + 1]


async def alist_objects(
    namespace: str, q: str = "", cursor: str | None = None, limit: int = OBJECTS_PAGE
) -> dict[str, Any]:
    """One page of a namespace's objects with their owners (CONTRACT)."""
    if not 1 <= limit <= OBJECTS_PAGE_MAX:
        raise InvalidArgument(f"limit must be 1-{OBJECTS_PAGE_MAX}")
    records = [r async for r in records_page(namespace, q, cursor, limit)]
    more = len(records) > limit
    records = records[:limit]
    holders = await aholders([f"{namespace}:{r.object_id}" for r in records])
    objects = []
    for r in records:
        lease = holders.get(f"{namespace}:{r.object_id}")
        objects.append(
            {
                "id": r.object_id,
                "name": r.name or None,
                "created": r.created.timestamp(),
                "last_active": r.last_active.timestamp(),
                "storage_bytes": r.storage_bytes,
                "active": lease is not None,
                "owner": lease["owner"] if lease else None,
            }
        )
    return {"objects": objects, "next_cursor": records[-1].object_id if more else None}


async def aget_record(namespace: str, hex_id: str) -> ObjectRecord | None:
    """The record of one object, if it ever stored data."""
    return await ObjectRecord.objects.filter(namespace=namespace, object_id=hex_id).afirst()
