"""Failpoints: named places in the runtime where tests inject faults.

The runtime calls ``check("storage.commit")`` (or ``await acheck(...)`` where a delay
makes sense) at the places that can fail in production: a commit hitting a full disk,
the Django database failing before a commit, a pause while a turn re-enters its gate,
Redis failing on renew or release, a pause between a commit and its reply. Off, a check
is one dict lookup on an empty dict. Tests and the simulation (``durable_core.testing.
simulation``) switch them on::

    with failpoints.enabled("storage.commit", error=sqlite3.OperationalError("disk full")):
        ...

Names in use: ``storage.commit``, ``storage.destroy``, ``turns.before_commit``,
``turns.gate_reacquire``, ``turns.after_commit``, ``turns.record_call``,
``host.renew``, ``host.release``, ``host.claim``, ``host.object_closed``,
``router.deliver``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

NAMES = frozenset(
    {
        "storage.commit",
        "storage.destroy",
        "turns.before_commit",
        "turns.gate_reacquire",
        "turns.after_commit",
        "turns.record_call",
        "host.renew",
        "host.release",
        "host.claim",
        "host.object_closed",
        "router.deliver",
    }
)


@dataclass
class Failpoint:
    """What happens when a named point is reached: raise ``error``, or (async points
    only) sleep ``delay`` seconds, or call ``action``; with ``probability``, at most
    ``times`` times (None: every time)."""

    name: str
    error: BaseException | Callable[[], BaseException] | None = None
    delay: float = 0.0
    action: Callable[[], Any] | None = None
    probability: float = 1.0
    times: int | None = None
    rng: random.Random = field(default_factory=random.Random)
    hits: int = 0

    def fires(self) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.probability < 1.0 and self.rng.random() >= self.probability:
            return False
        self.hits += 1
        return True

    def raise_error(self) -> None:
        if self.action is not None:
            self.action()
        if self.error is not None:
            raise self.error() if callable(self.error) else self.error


_points: dict[str, Failpoint] = {}


def check(name: str) -> None:
    """Raise the configured error at ``name`` (nothing when the point is off)."""
    if _points:
        point = _points.get(name)
        if point is not None and point.fires():
            point.raise_error()


async def acheck(name: str) -> None:
    """Like ``check``, and sleep the configured delay first (an async point)."""
    if _points:
        point = _points.get(name)
        if point is not None and point.fires():
            if point.delay:
                await asyncio.sleep(point.delay)
            point.raise_error()


def enable(name: str, **options: Any) -> Failpoint:
    """Switch the point ``name`` on (options: see ``Failpoint``); returns it."""
    if name not in NAMES:
        raise ValueError(f"unknown failpoint {name!r}; known: {sorted(NAMES)}")
    point = Failpoint(name, **options)
    _points[name] = point
    return point


def disable(name: str) -> None:
    """Switch the point ``name`` off."""
    _points.pop(name, None)


def reset() -> None:
    """Switch every point off."""
    _points.clear()


@contextlib.contextmanager
def enabled(name: str, **options: Any) -> Iterator[Failpoint]:
    """Switch ``name`` on for a block."""
    point = enable(name, **options)
    try:
        yield point
    finally:
        if _points.get(name) is point:
            disable(name)
