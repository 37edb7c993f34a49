"""Objects the process tests drive over HTTP.

``process_app.Alarmed`` has an alarm the tests schedule and watch; ``process_app.SlowCounter``
can wait inside its turn before writing, so a test can freeze its host mid-turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from django.conf import settings

from durable_core.objects import AlarmInfo, DurableObject


def attempts_log_path():
    """Every ``on_alarm`` run, failed ones included, appended outside object storage."""
    return settings.VAR_DIR / "alarm_attempts.jsonl"


class Alarmed(DurableObject):
    """Schedules one alarm; each committed firing is appended to ``firings`` in storage.

    ``fail_times`` = n makes the runs with ``retry_count < n`` raise. It is compared with
    the retry count rather than decremented, because a raising run is rolled back, a
    decrement with it. Each run, committed or not, is also appended to a log file beside
    the Django database (a side effect outside storage), so a rolled-back run is visible.
    """

    namespace = "process_app.Alarmed"

    async def schedule(self, delay: float) -> float:
        """Set the alarm ``delay`` seconds from now; returns its epoch time."""
        when = time.time() + delay
        self.storage.set_alarm(when)
        return when

    async def set_fail_times(self, times: int) -> None:
        """Make the first ``times`` runs of ``on_alarm`` raise."""
        self.storage.put("fail_times", times)

    async def firings(self) -> list[dict]:
        """The committed firings, oldest first."""
        return self.storage.get("firings", [])

    async def on_alarm(self, info: AlarmInfo) -> None:
        failing = info.retry_count < self.storage.get("fail_times", 0)
        record = {
            "name": self.ctx.id.name,
            "time": time.time(),
            "scheduled": info.scheduled_time,
            "retry_count": info.retry_count,
            "pid": os.getpid(),
            "ok": not failing,
        }
        with open(attempts_log_path(), "a") as log:
            log.write(json.dumps(record) + "\n")
        if failing:
            raise RuntimeError(f"failing on purpose (retry_count {info.retry_count})")
        self.storage.put("firings", [*self.storage.get("firings", []), record])


class SlowCounter(DurableObject):
    """A counter whose increment may sleep inside the turn (gate closed) before writing."""

    namespace = "process_app.SlowCounter"

    async def increment(self, delay: float = 0.0) -> int:
        """Wait ``delay`` seconds, then add one and return the new value.

        A waiting turn first appends a line to ``slow_turns.jsonl`` beside the Django
        database, so a test knows the turn is running before it freezes the host.
        """
        if delay:
            record = {"name": self.ctx.id.name, "pid": os.getpid(), "time": time.time()}
            with open(settings.VAR_DIR / "slow_turns.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            await asyncio.sleep(delay)
        value = self.storage.get("n", 0) + 1
        self.storage.put("n", value)
        return value

    async def value(self) -> int:
        """The current value."""
        return self.storage.get("n", 0)
