"""Hot objects: which of a host's objects are doing the most, kept cheaply (issue 22).

A durable object is one serial owner, so a hot one (a popular room, a flooding device,
a shared rate-limit key) melts its owner while the rest of the cluster idles. Every turn
passes through the runtime, so each host keeps, per object it runs:

- ``turns_per_s``: turns finished per second;
- ``busy``: the share of wall time spent inside its turns (0-1; the owner's capacity
  is one turn at a time, so 1 means it is saturated);
- ``mailbox``: events queued now (read when the figures are folded);
- ``rejected``: calls refused per second (mailbox full or a per-object limit).

The turn path pays one dict look-up and two additions (``turn``); a refused call pays
the same (``rejected``). Everything else happens in ``fold``, at most once per
heartbeat: the window's counts become exponentially decayed rates (time constant
``TAU`` seconds), and only the ``CAPACITY`` hottest objects are kept, so the table is
bounded however many objects the host runs, and objects that cool down fade out. The
window itself holds one small list per object that ran since the last fold, and is
folded early if it ever holds ``WINDOW_CAP`` of them.

The ``PUBLISHED`` hottest go out in the host's heartbeat description (``snapshot``), and
``merge`` ranks the entries of every host together: no figure is ever a metric label
per object, so Prometheus series stay bounded.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import clock

if TYPE_CHECKING:
    from .turns import ActiveObject

TAU = 2.0  # seconds: the decay's time constant (a rate is ~86% current after 4 s)
CAPACITY = 64  # objects tracked per host
PUBLISHED = 20  # objects published per host in its heartbeat
WINDOW_CAP = 4096  # objects counted between two folds before folding early
MIN_FOLD = 0.2  # seconds: snapshots closer together than this reuse the last fold
EVENTS_KEPT = 50  # overload events kept per host
FIGURES = ("heat", "busy", "turns_per_s", "mailbox", "rejected")

# The figures of one object as counted since the last fold: turns, seconds inside turns,
# calls refused for a full mailbox, calls refused by the object's limit.
_TURNS, _BUSY, _FULL, _LIMITED = range(4)


def heat(
    busy: float, turns_per_s: float, mailbox: int, rejected: float, mailbox_size: int
) -> float:
    """One number to rank objects by: a unit is an owner saturated by this object (busy
    1), or 1,000 turns/s, or a full mailbox, or 10 refused calls/s; they add up."""
    return busy + turns_per_s / 1000 + mailbox / max(1, mailbox_size) + rejected / 10


class _Tracked:
    """The decayed figures of one tracked object."""

    __slots__ = ("busy", "heat", "key", "mailbox", "name", "rejected", "seen", "turns_per_s")

    def __init__(self, key: str) -> None:
        self.key = key
        self.name: str | None = None
        self.turns_per_s = 0.0
        self.busy = 0.0
        self.rejected = 0.0
        self.mailbox = 0
        self.heat = 0.0
        self.seen = 0.0

    def as_dict(self) -> dict[str, Any]:
        namespace, _, hex_id = self.key.rpartition(":")
        return {
            "namespace": namespace,
            "id": hex_id,
            "name": self.name,
            "turns_per_s": round(self.turns_per_s, 2),
            "busy": round(min(1.0, self.busy), 4),
            "mailbox": self.mailbox,
            "rejected": round(self.rejected, 2),
            "heat": round(self.heat, 4),
        }


class HotObjects:
    """A host's bounded, decayed top-K of objects by what they cost it.

    Args:
        lookup: finds the active object of a key (``host.active.get``), for its mailbox
            depth and name at fold time.
        mailbox_size: the mailbox bound, to scale depth in ``heat``.
    """

    enabled = True

    def __init__(
        self, lookup: Callable[[str], ActiveObject | None], mailbox_size: int = 1000
    ) -> None:
        self._lookup = lookup
        self.mailbox_size = mailbox_size
        self._window: dict[str, list] = {}
        self._table: dict[str, _Tracked] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self._last_fold = clock.monotonic()
        self._published: list[dict[str, Any]] = []

    # -- the hot path: one look-up and two additions ---------------------------------------

    def turn(self, key: str, seconds: float) -> None:
        """One turn of ``key`` ended after ``seconds`` (called by every turn)."""
        counts = self._window.get(key)
        if counts is None:
            if len(self._window) >= WINDOW_CAP:
                self.fold()
            self._window[key] = [1, seconds, 0, 0]
        else:
            counts[0] += 1
            counts[1] += seconds

    def rejected(self, key: str, *, limited: bool = False) -> None:
        """A call to ``key`` was refused: its mailbox was full, or (``limited``) its
        per-object limit refused it."""
        counts = self._window.get(key)
        if counts is None:
            counts = self._window[key] = [0, 0.0, 0, 0]
        counts[_LIMITED if limited else _FULL] += 1

    # -- folding, at most once per heartbeat ----------------------------------------------

    def fold(self, now: float | None = None) -> None:
        """Turn the window's counts into decayed rates and keep the hottest objects."""
        now = clock.monotonic() if now is None else now
        elapsed = now - self._last_fold
        if elapsed <= 0:
            return
        self._last_fold = now
        window, self._window = self._window, {}
        keep = math.exp(-elapsed / TAU)
        fresh = 1.0 - keep
        table = self._table
        for tracked in table.values():
            tracked.turns_per_s *= keep
            tracked.busy *= keep
            tracked.rejected *= keep
        wall = clock.wall()
        for key, (turns, busy, full, limited) in window.items():
            tracked = table.get(key)
            if tracked is None:
                tracked = table[key] = _Tracked(key)
            tracked.turns_per_s += fresh * turns / elapsed
            tracked.busy += fresh * min(1.0, busy / elapsed)
            tracked.rejected += fresh * (full + limited) / elapsed
            tracked.seen = wall
            if full or limited:
                self._overloaded(key, full, limited, wall)
        for tracked in table.values():
            active = self._lookup(tracked.key)
            if active is not None:
                tracked.mailbox = len(active.mailbox)
                tracked.name = active.object_id.name
            else:
                tracked.mailbox = 0
            tracked.heat = heat(
                tracked.busy,
                tracked.turns_per_s,
                tracked.mailbox,
                tracked.rejected,
                self.mailbox_size,
            )
        if len(table) > CAPACITY:
            kept = heapq.nlargest(CAPACITY, table.values(), key=lambda t: t.heat)
            self._table = table = {t.key: t for t in kept}
        for key in [k for k, t in table.items() if t.heat < 1e-4 and not t.mailbox]:
            del table[key]  # cooled down: forget it
        self._published = [
            t.as_dict()
            for t in heapq.nlargest(PUBLISHED, table.values(), key=lambda t: t.heat)
            if t.heat > 0
        ]

    def _overloaded(self, key: str, full: int, limited: int, wall: float) -> None:
        namespace, _, hex_id = key.rpartition(":")
        active = self._lookup(key)
        self.events.append(
            {
                "ts": round(wall, 3),
                "namespace": namespace,
                "id": hex_id,
                "name": active.object_id.name if active is not None else None,
                "mailbox_full": full,
                "limited": limited,
            }
        )

    def snapshot(self) -> dict[str, Any]:
        """The heartbeat's part: the hottest objects and the recent overload events (the
        figures are folded first unless the last fold is very recent)."""
        if clock.monotonic() - self._last_fold >= MIN_FOLD or self._window:
            self.fold()
        return {"hot": list(self._published), "overloads": list(self.events)}


class DisabledHotObjects(HotObjects):
    """Detection turned off (``HOT_OBJECTS`` false): every hook does nothing."""

    enabled = False

    def turn(self, key: str, seconds: float) -> None:
        """Does nothing."""

    def rejected(self, key: str, *, limited: bool = False) -> None:
        """Does nothing."""


def merge(
    hosts: Iterable[dict[str, Any]], *, limit: int = PUBLISHED, by: str = "heat"
) -> dict[str, list[dict[str, Any]]]:
    """The hottest objects and the overload events of every live host description
    (``describe()``), each entry with its ``owner``, hottest first, events newest first.

    An object listed by two hosts (it moved between their heartbeats) is kept once,
    with the figures of the host that holds it hotter.
    """
    if by not in FIGURES:
        raise ValueError(f"by must be one of {', '.join(FIGURES)}")
    best: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for host in hosts:
        owner = host.get("id")
        for entry in host.get("hot") or ():
            key = f"{entry['namespace']}:{entry['id']}"
            if key not in best or entry.get("heat", 0) > best[key].get("heat", 0):
                best[key] = dict(entry, owner=owner)
        events += [dict(event, owner=owner) for event in host.get("overloads") or ()]
    ranked = heapq.nlargest(limit, best.values(), key=lambda e: (e.get(by) or 0, e.get("heat", 0)))
    events.sort(key=lambda e: e["ts"], reverse=True)
    return {"objects": ranked, "overloads": events[:EVENTS_KEPT]}
