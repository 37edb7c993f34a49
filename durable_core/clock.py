"""The runtime's clocks, in one place so that a simulation can replace them.

``monotonic()`` measures lease deadlines, idle time and caches; ``wall()`` is epoch
seconds for alarms and records. Production uses ``time.monotonic`` and ``time.time``;
the seeded simulation (``durable_core.testing.simulation``) points both at its virtual
event-loop clock, so a whole run of hosts, leases and alarms replays exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

monotonic: Callable[[], float] = time.monotonic
wall: Callable[[], float] = time.time


def use(monotonic_clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
    """Replace both clocks (the simulation); ``reset()`` restores the real ones."""
    global monotonic, wall
    monotonic, wall = monotonic_clock, wall_clock


def reset() -> None:
    """Back to the real clocks."""
    use(time.monotonic, time.time)
