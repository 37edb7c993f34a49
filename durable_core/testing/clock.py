"""``ManualClock``: the runtime's wall clock moved by hand, so a test can jump to when
an alarm is due ("three days later") without waiting. The ``durable_clock`` fixture
installs one for a test.

Only wall time moves (``durable_core.clock.wall``: alarms, records); the monotonic clock
that times leases and turns keeps running for real, so nothing lapses when the test jumps.
An object that computes its alarm times from ``time.time()`` works too, as long as each
jump is at least as long as the wait it skips.
"""

from __future__ import annotations

import asyncio
import time

from .. import clock


class ManualClock:
    """Real wall time plus an offset that only ``advance`` changes."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._previous = (clock.monotonic, clock.wall)

    def wall(self) -> float:
        """The runtime's time now: epoch seconds, ``offset`` ahead of the real clock."""
        return time.time() + self.offset

    def install(self) -> ManualClock:
        """Make this the runtime's wall clock (``uninstall`` puts the previous one back)."""
        self._previous = (clock.monotonic, clock.wall)
        clock.use(self._previous[0], self.wall)
        return self

    def uninstall(self) -> None:
        clock.use(*self._previous)

    async def advance(self, seconds: float) -> int:
        """Move the wall clock ``seconds`` forward and run every alarm due by then (in
        this process's host); returns once they ran, with how many there were.

        Raises:
            RuntimeError: no object host runs in this process.
        """
        from ..host import get_host

        if seconds < 0:
            raise ValueError("time only moves forward")
        host = get_host()
        if host is None:
            raise RuntimeError("no object host runs in this process (use durable_host)")
        self.offset += seconds
        claimed = await host.alarms.poll_once()
        # poll_once hands each due alarm to a delivery task that returns when the alarm's
        # turn has committed (or failed and scheduled its retry).
        await asyncio.gather(*list(host.alarms._inflight), return_exceptions=True)
        return claimed
