"""The alarm index and the scheduler that fires due alarms (DESIGN §8).

The object's storage holds the truth; ``ObjectRecord.alarm_at`` is the durable index
every host's scheduler polls. The index is written before the object's commit and
cleared only after the firing commit, so a crash in between causes at most an extra
wake-up (which checks the truth and does nothing), never a lost alarm. A due alarm is
delivered as an ordinary event through the router, so it runs wherever the lease puts
the object; a claim on the index row keeps two hosts from firing the same one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from . import clock, metrics
from ._tasks import cancel_and_wait
from .events import Event, internal_event, settle
from .exceptions import LeaseLost, StaleOwner, error_to_dict
from .ids import ObjectId
from .objects import AlarmInfo

logger = logging.getLogger(__name__)

ALARM_MAX_RETRIES = 6
ALARM_FIRST_BACKOFF = 2.0


class AlarmScheduler:
    """Polls the index and delivers due alarms as events through the router.

    ``claim_due(now)`` claims due index rows (``RecordStore.claim_due``); ``deliver``
    sends one alarm event (``Router.deliver_alarm``): the host passes both in.
    """

    def __init__(
        self,
        poll_interval: float,
        claim_due: Callable[[float], Awaitable[list[tuple[str, str, str]]]],
        deliver: Callable[[ObjectId], Awaitable[None]],
    ) -> None:
        self.poll_interval = poll_interval
        self._claim_due = claim_due
        self._deliver_alarm = deliver
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self.fired = 0

    def start(self) -> None:
        """Begin polling on the running loop."""
        self._task = asyncio.create_task(self._run(), name="durable:alarms")

    async def stop(self) -> None:
        """Stop polling; in-flight deliveries are left to finish or fail."""
        await cancel_and_wait([self._task, *self._inflight])

    async def poll_once(self) -> int:
        """Claim and dispatch every due alarm now; returns how many were claimed."""
        due = await self._claim_due(clock.wall())
        for namespace, hex_id, name in due:
            task = asyncio.create_task(self._deliver(ObjectId(namespace, hex_id, name or None)))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(due)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                logger.exception("alarm poll failed")
            await asyncio.sleep(self.poll_interval)

    async def _deliver(self, object_id: ObjectId) -> None:
        try:
            await self._deliver_alarm(object_id)
            self.fired += 1
        except Exception as exc:  # the claim lapses and the next poll tries again
            logger.warning("alarm of %s not delivered: %s", object_id.key, exc)


class AlarmEvents:
    """The alarm part of ``ActiveObject``: firing, retries with backoff, local timers."""

    async def _begin_alarm(self, event: Event) -> bool:
        """Before a due alarm's handler runs: commit the turns before it, then commit
        the retry that follows if this run fails (backoff from 2 s; after the last of
        ``ALARM_MAX_RETRIES`` retries, none). A failed run is then simply rolled back
        to that state: no bookkeeping after a failure can fail, and the count holds
        even when the process dies mid-run. Returns False (and fails the event) when
        these commits fail."""
        self._alarm_attempt = None
        error = await self._commit_segment()
        if error is None:
            try:
                attempt = self._write_alarm_attempt()
            except (StaleOwner, LeaseLost) as exc:
                self._fenced = exc  # the commit below refuses and evicts
                attempt = None
            except Exception as exc:  # a full disk: nothing of it may commit
                self.db.rollback()
                return self._alarm_not_run(event, exc)
            error = await self._commit_segment()
            if error is None:
                self._alarm_attempt = attempt
        if error is not None:
            return self._alarm_not_run(event, error)
        return True

    def _write_alarm_attempt(self) -> tuple[float, int] | None:
        scheduled = self.storage.get_alarm()
        if scheduled is None or scheduled > clock.wall() + 0.005:
            return None  # an early or stale wake-up
        retry = int(self.db.get_meta("alarm_retry") or 0)  # type: ignore[call-overload]
        if retry >= ALARM_MAX_RETRIES:
            self.db.set_meta("alarm", None)
            self.db.set_meta("alarm_retry", None)
        else:
            self.db.set_meta("alarm", clock.wall() + ALARM_FIRST_BACKOFF * 2**retry)
            self.db.set_meta("alarm_retry", retry + 1)
        self.storage.alarm_changed = True
        return scheduled, retry

    def _alarm_not_run(self, event: Event, error: BaseException) -> bool:
        logger.warning("alarm of %s not run: %s", self.key, error)
        settle(event.future, ("err", error_to_dict(error)))
        return False

    async def _fire_alarm(self) -> None:
        attempt = self._alarm_attempt  # set by _begin_alarm for this event
        if attempt is None:
            self.storage.alarm_changed = True  # an early or stale wake-up: resync the index
            return
        scheduled, retry = attempt
        # Cleared first, inside the turn: the handler may set the next alarm, and a
        # handler that raises rolls this back to the retry committed before it ran.
        self.db.set_meta("alarm", None)
        self.db.set_meta("alarm_retry", None)
        self.storage.alarm_changed = True
        handler = getattr(self.instance, "on_alarm", None)
        if handler is None:
            logger.warning("%s has an alarm but no on_alarm handler", self.key)
            return
        metrics.alarm_fired(self.object_id.namespace, clock.wall() - scheduled)
        await handler(AlarmInfo(retry_count=retry, scheduled_time=scheduled))

    def _schedule_alarm_timer(self, when: float | None) -> None:
        if self._alarm_timer is not None:
            self._alarm_timer.cancel()
            self._alarm_timer = None
        if when is None or self.closing:
            return
        delay = max(0.0, when - clock.wall())
        self._alarm_timer = asyncio.get_running_loop().call_later(delay, self._alarm_due)

    def _alarm_due(self) -> None:
        self._alarm_timer = None
        if self.closing:
            return
        self.enqueue(internal_event("alarm"))
