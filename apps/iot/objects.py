"""``iot.Device``: one durable object per device, holding its twin (CONTRACT § IoT).

Storage (key-value): ``twin`` (desired, reported, their metadata, timestamp), ``version``
(a delete takes a version too and the count continues after it, so no version read before
a delete is ever current again), ``conn``
(connected or not), ``last_seen`` (the device's last message), ``device_id`` and
``summary_seq``. Telemetry lives in the SQL table ``telemetry``, bounded by count and
age. The one alarm of the object is the heartbeat deadline: it is armed while the device
is connected and, when it fires with no message since ``IOT_HEARTBEAT_TIMEOUT`` seconds,
the device is marked disconnected (``offline`` to watchers).

WebSockets: the device's own socket (tag ``device``) and dashboards (tag ``watch``).
After each change the object writes a summary row for the device list, after the commit
(see ``_publish_summary``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from durable_core.objects import AlarmInfo, DurableObject

from . import twin as rules
from .models import DeviceSummary, save_summary

logger = logging.getLogger(__name__)

MAX_METRICS_PER_POINT = 32
MAX_METRIC_NAME = 64
MAX_QUERY_POINTS = 10_000


def heartbeat_timeout() -> float:
    return float(getattr(settings, "IOT_HEARTBEAT_TIMEOUT", 30.0))


def telemetry_limits() -> tuple[int, float]:
    """(values kept per device, seconds kept)."""
    return (
        int(getattr(settings, "IOT_TELEMETRY_MAX_POINTS", 10_000)),
        float(getattr(settings, "IOT_TELEMETRY_MAX_AGE", 7 * 24 * 3600)),
    )


def _create_telemetry(sql) -> None:
    sql.execute("CREATE TABLE telemetry (metric TEXT NOT NULL, ts REAL NOT NULL, value REAL)")
    sql.execute("CREATE INDEX telemetry_metric_ts ON telemetry(metric, ts)")
    sql.execute("CREATE INDEX telemetry_ts ON telemetry(ts)")


SCHEMA = [_create_telemetry]


def check_points(points: Any, now: float) -> list[tuple[float, dict[str, float]]]:
    """Validate telemetry points ``[{"metrics": {...}, "ts"?: t}, ...]``.

    Raises:
        TwinError: 400 for anything that is not a finite number under a short name.
    """
    if not isinstance(points, list):
        raise rules.bad_request("points must be a list")
    checked = []
    for point in points:
        if not isinstance(point, dict):
            raise rules.bad_request("a point is an object with metrics and an optional ts")
        metrics, ts = point.get("metrics"), point.get("ts", now)
        if not isinstance(metrics, dict) or not 0 < len(metrics) <= MAX_METRICS_PER_POINT:
            raise rules.bad_request(f"metrics: an object of 1-{MAX_METRICS_PER_POINT} values")
        if not _is_number(ts) or not 0 <= ts <= now + 24 * 3600:
            raise rules.bad_request("ts: epoch seconds, not more than a day ahead")
        for name, value in metrics.items():
            if not rules.DEVICE_ID_RE.fullmatch(name):
                raise rules.bad_request("metric names: 1-64 chars of [A-Za-z0-9_-]")
            if not _is_number(value):
                raise rules.bad_request(f"metric {name}: a finite number")
        checked.append((float(ts), {k: float(v) for k, v in metrics.items()}))
    return checked


def _is_number(value: Any) -> bool:
    """A finite JSON number that fits a float (a 400-digit integer does not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large to convert to float
        return False


class Device(DurableObject):
    """A device twin with its connection state, telemetry and live sockets."""

    namespace = "iot.Device"

    async def on_start(self) -> None:
        self._summary_row: dict | None = None
        self._summary_task: asyncio.Task | None = None
        self._schema_ready = False
        # Storage without a version count: a new device, or one whose storage was deleted
        # (the inspection API, the admin). Its summary row outlives the storage: the count
        # continues above it, and the deletion takes a version like a twin DELETE, so no
        # version read before it is current again (ABA, issue 16). The summary's ``seq``
        # is continued too, or the new summaries would lose to the old row.
        self._version_base, self._seq_base = 0, 0
        if self.storage.get("version") is None:
            row = await sync_to_async(_stored_summary)(self.ctx.id.hex)
            if row is not None:
                self._version_base, self._seq_base = row[0] + 1, row[1]

    # -- the twin ------------------------------------------------------------------------

    def _device_id(self) -> str:
        return self.storage.get("device_id") or self.ctx.id.name or self.ctx.id.hex

    def _version(self) -> int:
        return self.storage.get("version", self._version_base)

    def _connection(self) -> dict:
        conn = self.storage.get("conn") or {"state": "disconnected"}
        return {"state": conn["state"], "last_seen": self.storage.get("last_seen")}

    def _document(self, stored: dict | None) -> dict:
        stored = stored or {"desired": {}, "reported": {}, "meta": {}, "timestamp": None}
        return {
            "device_id": self._device_id(),
            "state": {
                "desired": stored["desired"],
                "reported": stored["reported"],
                "delta": rules.delta(stored["desired"], stored["reported"]),
            },
            "metadata": {
                "desired": stored["meta"].get("desired", {}),
                "reported": stored["meta"].get("reported", {}),
            },
            "version": self._version(),
            "timestamp": stored["timestamp"],
            "connection": self._connection(),
        }

    async def get_twin(self) -> dict | None:
        """The twin document, or None when it was never written (or deleted)."""
        stored = self.storage.get("twin")
        return None if stored is None else self._document(stored)

    async def update(self, request: dict, create_only: bool = False) -> dict:
        """Apply a validated PATCH (``twin.parse_update``): ``{"status": 200, "twin"}`` or
        the refusal ``{"status": 409|413|400, "error", "message", ...}``."""
        try:
            doc = self._apply(request["state"], request.get("version"), create_only=create_only)
        except rules.TwinError as exc:
            return exc.to_dict()
        await self._publish_summary()
        return {"status": 200, "twin": doc}

    def _apply(self, state: dict, version: int | None, *, create_only: bool = False) -> dict:
        """Merge ``state`` into the twin: +1 version, delta to the device, twin to watchers.

        Raises:
            TwinError: 409 on a version conflict (or an existing twin with
                ``create_only``), 413 when the document would exceed 8 KiB.
        """
        current = self._version()
        stored = self.storage.get("twin")
        if create_only and stored is not None:
            raise rules.TwinError(409, "exists", "this device already has a twin")
        if version is not None and version != current:
            raise rules.TwinError(
                409, "version_conflict", f"version {version} is not current", version=current
            )
        now = time.time()
        if stored is None:
            stored = {"desired": {}, "reported": {}, "meta": {}, "timestamp": now}
        before_desired = json.dumps(stored["desired"], sort_keys=True)
        for section, patch in state.items():
            meta = stored["meta"].setdefault(section, {})
            if patch is None:  # "desired": null clears the whole section
                stored[section], stored["meta"][section] = {}, {}
            else:
                rules.merge(stored[section], meta, patch, now)
        size = rules.document_size(stored["desired"], stored["reported"])
        if size > rules.MAX_DOCUMENT_BYTES:
            raise rules.TwinError(
                413, "too_large", f"the document would be {size} bytes (limit 8 KiB)"
            )
        stored["timestamp"] = now
        self.storage.put_many(
            {"twin": stored, "version": current + 1, "device_id": self._device_id()}
        )
        doc = self._document(stored)
        desired_changed = json.dumps(stored["desired"], sort_keys=True) != before_desired
        if desired_changed and doc["state"]["delta"]:
            self._send_delta(doc)
        self._broadcast("watch", {"type": "twin", "twin": doc})
        return doc

    def _send_delta(self, doc: dict) -> None:
        frame = {
            "type": "delta",
            "state": doc["state"]["delta"],
            "version": doc["version"],
            "timestamp": doc["timestamp"],
        }
        self._broadcast("device", frame)

    async def delete_twin(self) -> bool:
        """Delete the twin and its telemetry; False if there was no twin.

        A delete is a write: it takes the next version, so every version read before it
        is stale and a version-checked PATCH made from it gets 409 instead of silently
        recreating a twin that holds only the patch (issue 16 §6)."""
        if self.storage.get("twin") is None:
            return False
        self.storage.delete("twin")
        self.storage.put("version", self._version() + 1)
        if self._telemetry_exists():
            self.storage.sql.execute("DELETE FROM telemetry")
        self._broadcast("watch", {"type": "twin", "twin": None, "version": self._version()})
        await self._publish_summary()
        return True

    # -- connection state ------------------------------------------------------------------

    def _seen(self) -> None:
        """A message from the device: it is alive. Arms the heartbeat alarm if needed;
        the alarm is not moved on every heartbeat (that would rewrite the alarm index
        each time): when it fires early it re-arms itself from ``last_seen``."""
        now = time.time()
        self.storage.put("last_seen", now)
        if self.storage.get_alarm() is None:
            self.storage.set_alarm(now + heartbeat_timeout())
        if self._connection()["state"] != "connected":
            self._set_connection("connected")

    def _set_connection(self, state: str) -> None:
        self.storage.put("conn", {"state": state})
        event = "online" if state == "connected" else "offline"
        self._broadcast("watch", {"type": event, "connection": self._connection()})
        self._broadcast_twin()

    def _broadcast_twin(self) -> None:
        stored = self.storage.get("twin")
        if stored is not None:
            self._broadcast("watch", {"type": "twin", "twin": self._document(stored)})

    async def on_alarm(self, info: AlarmInfo) -> None:
        """The heartbeat deadline: offline if the device stayed silent, else re-arm."""
        if self._connection()["state"] != "connected":
            return
        due = (self.storage.get("last_seen") or 0) + heartbeat_timeout()
        if time.time() < due:
            self.storage.set_alarm(due)
            return
        self._set_connection("disconnected")
        await self._publish_summary()

    # -- WebSockets ----------------------------------------------------------------------

    async def on_websocket_connect(self, ws, request) -> None:
        # The route says which socket this is (apps/iot/routing.py), never the path's
        # look: a device named "watch" is a device (issue 16 §7).
        role = request.kwargs.get("role")
        if role not in ("device", "watch"):
            logger.warning("socket of %s refused: no role in its route", self.ctx.id.key)
            return  # not accepted: the front closes it
        self.ctx.accept_websocket(ws, tags=[role])
        was = self._connection()["state"]
        if role == "device":
            self._seen()
        stored = self.storage.get("twin")
        twin = None if stored is None else self._document(stored)
        if role == "device" and twin is None:
            twin = self._document(None)  # a device always learns the version count
        ws.send(json.dumps({"type": "twin", "twin": twin}))
        if role == "watch":
            ws.send(json.dumps({"type": self._event_name(), "connection": self._connection()}))
        if was != self._connection()["state"]:
            await self._publish_summary()

    def _event_name(self) -> str:
        return "online" if self._connection()["state"] == "connected" else "offline"

    async def on_websocket_message(self, ws, message) -> None:
        if "device" not in ws.tags:
            return  # dashboards only listen
        try:
            msg = json.loads(message)
        except (ValueError, TypeError, RecursionError):
            msg = None
        if not isinstance(msg, dict):
            ws.send(json.dumps({"type": "error", "error": "bad_request", "message": "bad JSON"}))
            return
        was = self._connection()["state"]
        self._seen()
        kind = msg.get("type")
        if kind == "report":
            self._report(ws, msg)
        elif kind == "telemetry":
            self._telemetry_message(ws, msg)
        elif kind != "heartbeat":
            ws.send(json.dumps({"type": "error", "error": "bad_request", "message": "type?"}))
        if was != self._connection()["state"] or kind == "report":
            await self._publish_summary()

    def _report(self, ws, msg: dict) -> None:
        """A device report: a write of ``reported`` (never pushes a delta)."""
        field = "clientToken" if "clientToken" in msg else "client_token"
        token = msg.get(field)
        state = msg.get("state")
        body = {"state": {"reported": state}, "version": msg.get("version")}
        if token is not None:
            body[field] = token
        try:
            # A missing or null state is not "clear reported" (as in a PATCH): a device
            # that forgot its state must not wipe what it reported before.
            if not isinstance(state, dict):
                raise rules.bad_request("a report carries a state object (reported fields)")
            request = rules.parse_update(body)
            doc = self._apply(request["state"], request["version"])
        except rules.TwinError as exc:
            reply = {"type": "rejected", "error": exc.code, "version": self._version()}
            ws.send(json.dumps({**reply, "message": exc.message, **_token(field, token)}))
            return
        ws.send(json.dumps({"type": "accepted", "version": doc["version"], **_token(field, token)}))

    async def on_websocket_close(self, ws, code, reason, was_clean) -> None:
        if "device" not in ws.tags or self.ctx.get_websockets("device"):
            return
        self.storage.delete_alarm()
        if self._connection()["state"] == "connected":
            self._set_connection("disconnected")
            await self._publish_summary()

    def _broadcast(self, tag: str, message: dict) -> None:
        sockets = self.ctx.get_websockets(tag)
        if sockets:
            frame = json.dumps(message)
            for ws in sockets:
                ws.send(frame)

    # -- telemetry -----------------------------------------------------------------------

    def _telemetry_exists(self) -> bool:
        return bool(self.storage.get("telemetry_schema"))

    def _store_points(self, points: list[tuple[float, dict[str, float]]]) -> int:
        if not self._schema_ready:
            self.storage.migrate(SCHEMA)
            if not self._telemetry_exists():
                self.storage.put("telemetry_schema", len(SCHEMA))
            self._schema_ready = True
        sql = self.storage.sql
        stored = 0
        for ts, metrics in points:
            for name, value in metrics.items():
                sql.execute(
                    "INSERT INTO telemetry(metric, ts, value) VALUES (?, ?, ?)", name, ts, value
                )
                stored += 1
        max_points, max_age = telemetry_limits()
        sql.execute("DELETE FROM telemetry WHERE ts < ?", time.time() - max_age)
        excess = sql.execute("SELECT count(*) AS n FROM telemetry").one()["n"] - max_points
        if excess > 0:  # the oldest go first
            sql.execute(
                "DELETE FROM telemetry WHERE rowid IN "
                "(SELECT rowid FROM telemetry ORDER BY ts, rowid LIMIT ?)",
                excess,
            )
        return stored

    async def add_telemetry(self, points: list) -> dict:
        """Store points: ``{"status": 202, "stored": n}`` or a 400 refusal."""
        try:
            checked = check_points(points, time.time())
        except rules.TwinError as exc:
            return exc.to_dict()
        stored = self._store_points(checked)
        for ts, metrics in checked:
            self._broadcast("watch", {"type": "telemetry", "ts": ts, "metrics": metrics})
        return {"status": 202, "stored": stored}

    def _telemetry_message(self, ws, msg: dict) -> None:
        point = {"metrics": msg.get("metrics")}
        if "ts" in msg:
            point["ts"] = msg["ts"]
        try:
            checked = check_points([point], time.time())
        except rules.TwinError as exc:
            ws.send(json.dumps({"type": "error", "error": exc.code, "message": exc.message}))
            return
        self._store_points(checked)
        for ts, metrics in checked:
            self._broadcast("watch", {"type": "telemetry", "ts": ts, "metrics": metrics})

    async def query_telemetry(
        self, metric: str, since: float | None, until: float | None, limit: int
    ) -> list[list[float]]:
        """Points ``[ts, value]`` of ``metric`` with since <= ts <= until, oldest first."""
        if not self._telemetry_exists():
            return []
        _, max_age = telemetry_limits()
        low = max(since if since is not None else -math.inf, time.time() - max_age)
        high = until if until is not None else math.inf
        rows = self.storage.sql.execute(
            "SELECT ts, value FROM telemetry WHERE metric = ? AND ts >= ? AND ts <= ? "
            "ORDER BY ts, rowid LIMIT ?",
            metric,
            low,
            high if math.isfinite(high) else 1e308,
            min(limit, MAX_QUERY_POINTS),
        )
        return [list(row) for row in rows.raw()]

    async def metrics(self) -> list[str]:
        """The names of the metrics with stored values."""
        if not self._telemetry_exists():
            return []
        rows = self.storage.sql.execute("SELECT DISTINCT metric FROM telemetry ORDER BY metric")
        return [row[0] for row in rows.raw()]

    # -- the device list's summary -----------------------------------------------------------

    async def _publish_summary(self) -> None:
        """Queue the device's summary row, written once this turn's writes are committed.

        ``open_gate`` commits the turn so far; the row is then handed to one writer task
        per instance, which writes only the newest row when changes come faster than the
        Django database takes them. ``seq`` keeps a late row from overwriting a newer one
        (also one written by a later owner of this object).
        """
        seq = self.storage.get("summary_seq", self._seq_base) + 1
        conn = self._connection()
        self.storage.put("summary_seq", seq)
        self._summary_row = {
            "object_id": self.ctx.id.hex,
            "device_id": self._device_id(),
            "version": self._version(),
            "has_twin": self.storage.get("twin") is not None,
            "connected": conn["state"] == "connected",
            "last_seen": conn["last_seen"],
            "timestamp": (self.storage.get("twin") or {}).get("timestamp"),
            "seq": seq,
        }
        async with self.ctx.open_gate():
            if self._summary_task is None or self._summary_task.done():
                # A fresh context: the writer outlives this turn and is part of none.
                self._summary_task = asyncio.create_task(
                    self._write_summaries(), context=contextvars.Context()
                )

    async def _write_summaries(self) -> None:
        while self._summary_row is not None:
            row, self._summary_row = self._summary_row, None
            try:
                await sync_to_async(save_summary)(row)
            except Exception:
                logger.exception("summary of %s not saved", self.ctx.id.key)


def _stored_summary(object_id: str) -> tuple[int, int] | None:
    """(version, seq) of the device's summary row, if one was ever written."""
    return DeviceSummary.objects.filter(object_id=object_id).values_list("version", "seq").first()


def _token(field: str, token: Any) -> dict:
    """The client token to echo, in the spelling the device sent it."""
    return {} if token is None else {field: token}
