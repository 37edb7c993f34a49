"""Per-object limits: shedding a hot object's excess callers on purpose (issue 22).

An operator sets a limit on one object (``PUT /api/objects/<ns>/<id>/limit``, or the
admin): at most ``turns_per_s`` calls admitted per second (a token bucket holding one
second's worth), and/or at most ``mailbox`` events queued. A call beyond it is refused
in ``ActiveObject.enqueue``, before it is queued, so it never costs the owner a turn: the
caller gets ``ObjectOverloaded`` with ``retry_after`` (HTTP 503 with Retry-After at the
edges). Only calls and WebSocket messages are limited; staff inspection, alarms and
WebSocket connects and closes always get through.

The limit is stored in the object's own database (runtime meta ``limit``), written by a
turn of its owner and committed like any write, so it follows the object to a new owner
on failover or a move, and is read back at activation.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

from . import clock, metrics
from .exceptions import InvalidArgument, ObjectOverloaded

if TYPE_CHECKING:
    from .events import Event
    from .storage.database import ObjectDatabase
    from .turns import ActiveObject

logger = logging.getLogger(__name__)

META_KEY = "limit"
LIMITED_KINDS = frozenset({"call", "ws"})
MAX_TURNS_PER_S = 1_000_000.0


class ObjectLimit:
    """An operator's limit on one object: a token bucket and/or a queue depth."""

    __slots__ = ("_at", "_tokens", "mailbox", "turns_per_s")

    def __init__(self, turns_per_s: float | None = None, mailbox: int | None = None) -> None:
        self.turns_per_s = turns_per_s
        self.mailbox = mailbox
        self._tokens = max(1.0, turns_per_s or 0.0)  # starts with one second's worth
        self._at = clock.monotonic()

    def as_dict(self) -> dict[str, Any]:
        """The limit as stored and as the API shows it."""
        return {"turns_per_s": self.turns_per_s, "mailbox": self.mailbox}

    def admit(self, active: ActiveObject, event: Event) -> None:
        """Let ``event`` be queued, or raise ObjectOverloaded with a retry hint."""
        if event.kind not in LIMITED_KINDS or event.lifecycle:
            return
        if self.mailbox is not None and len(active.mailbox) >= self.mailbox:
            self._refuse(active, f"its limit of {self.mailbox} queued events", 1.0)
        rate = self.turns_per_s
        if rate is None:
            return
        now = clock.monotonic()
        self._tokens = min(max(1.0, rate), self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens < 1.0:
            self._refuse(active, f"its limit of {rate:g} calls/s", (1.0 - self._tokens) / rate)
        self._tokens -= 1.0

    def _refuse(self, active: ActiveObject, what: str, retry_after: float) -> None:
        metrics.LIMIT_REFUSALS.inc()
        active.host.hot.rejected(active.key, limited=True)
        raise ObjectOverloaded(
            f"{active.key}: refused by {what}; retry later",
            retry_after=math.ceil(retry_after * 1000) / 1000,
        )


def parse(body: Any) -> ObjectLimit | None:
    """A limit from its JSON form (``{"turns_per_s": x, "mailbox": n}``, either may be
    null or absent); None when both are. InvalidArgument on anything else."""
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) - {"turns_per_s", "mailbox"}:
        raise InvalidArgument('a limit is {"turns_per_s": x, "mailbox": n} (either may be null)')
    rate, depth = body.get("turns_per_s"), body.get("mailbox")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise InvalidArgument("turns_per_s must be a number or null")
        if not (0 < rate <= MAX_TURNS_PER_S) or not math.isfinite(rate):
            raise InvalidArgument(f"turns_per_s must be above 0 and at most {MAX_TURNS_PER_S:g}")
        rate = float(rate)
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise InvalidArgument("mailbox must be a positive integer or null")
    if rate is None and depth is None:
        return None
    return ObjectLimit(rate, depth)


def load(db: ObjectDatabase) -> ObjectLimit | None:
    """The limit stored in an object's database, read at activation (None if none)."""
    if db.conn is None:
        return None  # no file yet: nothing stored, and reading must not create one
    raw = db.get_meta(META_KEY)
    if raw is None:
        return None
    try:
        return parse(json.loads(str(raw)))
    except (ValueError, InvalidArgument) as exc:  # never let a bad value stop activation
        logger.warning("%s: stored limit %r ignored: %s", db.path.stem, raw, exc)
        return None


def apply(active: ActiveObject, body: Any) -> dict[str, Any] | None:
    """Store a new limit (or none) in the object's database, inside one of its turns, and
    enforce it from the next call on. Returns the limit's JSON form."""
    limit = parse(body)
    active.db.set_meta(META_KEY, None if limit is None else json.dumps(limit.as_dict()))
    active.limit = limit
    return None if limit is None else limit.as_dict()


def current(active: ActiveObject) -> dict[str, Any] | None:
    """The limit the owner enforces now, in its JSON form."""
    return None if active.limit is None else active.limit.as_dict()
