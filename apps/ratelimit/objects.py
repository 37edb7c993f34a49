"""The limiter: one durable object per (policy, key), named ``"<policy>:<key>"``.

Why a sliding log. The guarantee is "in EVERY window of ``period`` seconds the admitted
cost is at most ``limit``", for windows starting anywhere, not only at aligned edges.
A fixed window admits up to 2 x limit across an edge; a sliding-window counter estimates
the previous window and is off both ways; a token bucket / GCRA bounds bursts to
``burst + elapsed/interval``, which over one period can exceed ``limit``. The log of the
requests admitted in the last ``period`` is exact, and it is small: every entry costs at
least 1 and the live entries sum to at most ``limit``, so it never holds more than
``limit`` entries.

Proof sketch. A request at time ``t`` is admitted only if the entries with
``t - e < period`` plus its cost fit in ``limit``. Take any window ``[s, s + period)`` and
the last admission ``t`` in it: every other admission ``e`` in the window has
``s <= e <= t`` so ``t - e < period``; those entries were in the log when ``t`` was
decided (entries are dropped only once ``t - e >= period``), hence their cost plus
``t``'s cost is at most ``limit``. The object's serial turns make check-and-consume
atomic; its storage commits before the reply leaves (output gate), so an admission a
client saw survives a restart or a ``kill -9`` of the owner and the next owner sees it.

Time is the owner's wall clock (``time.time()``), made monotonic per object by never
deciding earlier than the newest logged entry. After a failover the next owner's clock
is used: our hosts share one machine, hence one clock; across machines a clock skew of
``d`` could over-admit by what fits in ``d`` seconds, and would need a shared time source.

Idle limiters cost nothing: while the log is non-empty an alarm is set at (or after) the
moment it empties; the alarm destroys the object if it is still empty, removing its file,
record and alarm. Refusals and peeks write nothing.
"""

from __future__ import annotations

import time

from durable_core.objects import AlarmInfo, DurableObject

_STATE = "log"  # {"period": seconds, "entries": [[at, cost], ...] oldest first}


def _now() -> float:
    """The decision clock (a function so unit tests can pin it)."""
    return time.time()


class Limiter(DurableObject):
    """Sliding-log limiter for one (policy, key); see the module docstring for the proof."""

    namespace = "ratelimit.Limiter"

    async def consume(self, limit: int, period: float, cost: int = 1) -> dict:
        """Admit ``cost`` if it fits in every window of ``period``; returns the decision."""
        entries, now = self._live(period)
        used = sum(c for _, c in entries)
        allowed = used + cost <= limit
        if allowed:
            entries.append([now, cost])
            used += cost
            self.storage.put(_STATE, {"period": period, "entries": entries})
            if self.storage.get_alarm() is None:
                # One alarm per window, not one per request: on_alarm moves it on.
                self.storage.set_alarm(now + period)
        return self._decision(entries, used, limit, period, now, allowed, cost)

    async def peek(self, limit: int, period: float) -> dict:
        """The decision a request of cost 1 would get now, consuming nothing."""
        entries, now = self._live(period)
        used = sum(c for _, c in entries)
        return self._decision(entries, used, limit, period, now, used + 1 <= limit, 1)

    async def on_alarm(self, info: AlarmInfo) -> None:
        state = self.storage.get(_STATE)
        if not state:
            self.ctx.destroy()
            return
        period = float(state["period"])
        entries, _ = self._live(period)
        if not entries:
            self.ctx.destroy()
            return
        if len(entries) != len(state["entries"]):
            self.storage.put(_STATE, {"period": period, "entries": entries})
        self.storage.set_alarm(entries[-1][0] + period)

    # -- helpers ----------------------------------------------------------------------

    def _live(self, period: float) -> tuple[list[list], float]:
        """The entries still inside the window ending now, and now (never earlier than
        the newest entry, so a clock step back cannot reopen a window)."""
        state = self.storage.get(_STATE) or {}
        entries = state.get("entries", [])
        now = _now()
        if entries and entries[-1][0] > now:
            now = entries[-1][0]
        return [e for e in entries if now - e[0] < period], now

    @staticmethod
    def _decision(
        entries: list[list],
        used: int,
        limit: int,
        period: float,
        now: float,
        allowed: bool,
        cost: int,
    ) -> dict:
        remaining = max(0, limit - used)
        # reset_after: until the log is empty and the whole quota is back.
        reset_after = max(0.0, entries[-1][0] + period - now) if entries else 0.0
        retry_after = 0.0
        if not allowed:
            # The earliest moment enough old entries have left the window for ``cost``.
            need = used + cost - limit
            freed = 0
            for at, c in entries:
                freed += c
                if freed >= need:
                    retry_after = max(0.0, at + period - now)
                    break
            else:  # cost > limit: never fits (the service refuses such costs anyway)
                retry_after = float(period)
        return {
            "allowed": allowed,
            "limit": limit,
            "remaining": remaining,
            "reset_after": reset_after,
            "retry_after": retry_after,
            "period": period,
            "at": now,
        }
