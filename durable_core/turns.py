"""Turns and gates: how one active object processes its events (DESIGN §6).

Input gate: one event at a time. The dispatcher takes events from the mailbox and runs
them as turns; several queued turns share one SQLite transaction, each in its own
savepoint, and their replies are released together after that one commit (group
commit). Output gate: a reply leaves only after its writes committed and while the
lease is still valid. A turn that awaits another object (or ``ctx.open_gate()``)
commits what it has, lets other events run, and resumes in a new segment.

An activation moves through one line of phases, in one place (``_move``):
activating → running → draining → closed. Only the task holding the input gate touches
the storage's transaction or a turn's savepoint; a turn that lost the gate (its time
limit struck while it waited to re-enter) settles its own error and touches nothing.
Runtime bookkeeping (recording call ids, alarm retries, the steps after a commit) runs
where a failure fails the turn or is logged, never where it could leave a reply unsettled.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import audit, clock, failpoints, limits, metrics
from ._tasks import run_to_completion
from .alarms import ALARM_MAX_RETRIES, AlarmEvents
from .events import (
    Event,
    Reply,
    TurnState,
    encode_json,
    get_current_turn,
    reset_current_turn,
    set_current_turn,
    settle,
)
from .exceptions import (
    DurableError,
    InvalidArgument,
    LeaseLost,
    MethodNotFound,
    ObjectOverloaded,
    ObjectReset,
    PartiallyApplied,
    StaleOwner,
    StorageError,
    TurnTimeout,
    error_to_dict,
)
from .inspection import inspect_turn
from .objects import ObjectContext
from .storage import ObjectStorage
from .storage.files import remove_object_files
from .websockets import SocketEvents, SocketTable, WebSocket

if TYPE_CHECKING:
    from .host import ObjectHost
    from .ids import ObjectId
    from .leases.base import Lease
    from .objects import DurableObject
    from .storage.database import ObjectDatabase

logger = logging.getLogger(__name__)

PARTIAL = "!partial"  # the recorded reply of a call whose turn committed only part (not JSON)


class Gate:
    """The input gate: a lock in which resuming turns go before new events."""

    def __init__(self) -> None:
        self.locked = False
        self._resuming: deque[asyncio.Future] = deque()
        self._waiting: deque[asyncio.Future] = deque()

    async def acquire(self, *, resuming: bool = False) -> None:
        """Wait for the gate; ``resuming`` turns are served first."""
        if not self.locked:
            self.locked = True
            return
        fut = asyncio.get_running_loop().create_future()
        (self._resuming if resuming else self._waiting).append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        """Hand the gate to the next waiter, resuming turns first."""
        for queue in (self._resuming, self._waiting):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self.locked = False


class Phase(enum.Enum):
    """Where an activation is in its life; it only ever moves forward."""

    ACTIVATING = "activating"
    RUNNING = "running"
    DRAINING = "draining"
    CLOSED = "closed"


_NEXT_PHASES = {
    Phase.ACTIVATING: {Phase.RUNNING, Phase.DRAINING},
    Phase.RUNNING: {Phase.DRAINING},
    Phase.DRAINING: {Phase.CLOSED},
    Phase.CLOSED: set(),
}


def is_fatal(exc: BaseException) -> bool:
    """Exceptions a turn must let through: cancellation and interpreter exits. Anything
    else, including a native extension's panic (a BaseException), is a failed turn."""
    return isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit | GeneratorExit)


class ActiveObject(SocketEvents, AlarmEvents):
    """One activated object: instance, storage, mailbox, gates and lease."""

    def __init__(
        self,
        host: ObjectHost,
        object_id: ObjectId,
        object_class: type[DurableObject],
        lease: Lease,
        db: ObjectDatabase,
    ) -> None:
        self.host = host
        self.object_id = object_id
        self.key = object_id.key
        self.object_class = object_class
        self.lease = lease
        self.db = db
        db.write_guard = self._check_write_allowed
        self.storage = ObjectStorage(db, sql_time_limit_ms=host.settings.sql_time_limit_ms)
        self.ctx = ObjectContext(self)
        self.instance: DurableObject = object_class(self.ctx, self.storage)
        self.sockets = SocketTable(self)
        self.outbox: list[tuple[str, str, dict]] = []  # frames of the segment's finished turns
        self.frame_seq = 0
        self.mailbox: deque[Event] = deque()
        self.gate = Gate()
        self.pending: list[tuple[asyncio.Future, Reply]] = []
        self.phase = Phase.ACTIVATING
        self.closed = asyncio.Event()
        self.last_event = clock.monotonic()
        self.turns = 0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task | None = None
        self._abort_reason: str | None = None
        self._destroy_requested = False  # a turn that called ctx.destroy() succeeded
        self._destroyed = False  # the tombstone committed: this activation must end
        self._eviction: asyncio.Task | None = None
        self._calls_recorded = 0
        self._alarm_timer: asyncio.TimerHandle | None = None
        self._alarm_attempt: tuple[float, int] | None = None  # (due time, retry count)
        # The record exists once the file says so (written with the commit that made it).
        self.has_record = db.conn is not None and db.get_meta("recorded") is not None
        self._fenced: StaleOwner | LeaseLost | None = None
        self._connecting: WebSocket | None = None
        self._front_links: set[str] = set()  # fronts that got a socket in this segment
        self._running_turns = 0  # turns started and not finished (some may wait at a gate)
        self._turns_done = asyncio.Event()
        self._needs_reset = False
        self.limit = limits.load(db)  # an operator's per-object limit (limits.py)

    def __repr__(self) -> str:
        return f"<ActiveObject {self.key} token={self.lease.token} {self.phase.value}>"

    @property
    def closing(self) -> bool:
        """True once the activation is draining or closed: it takes no new events."""
        return self.phase in (Phase.DRAINING, Phase.CLOSED)

    def _move(self, phase: Phase) -> None:
        """The one place where the phase changes (forward only)."""
        if phase not in _NEXT_PHASES[self.phase]:
            raise RuntimeError(f"{self.key}: no move from {self.phase.value} to {phase.value}")
        self.phase = phase

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Run ``on_start`` under the gate (no event runs before it returns), then start
        dispatching. Raises when on_start raises or its commit fails; the caller evicts."""
        await self.gate.acquire()
        try:
            await self._run_on_start()
        finally:
            self.gate.release()
        alarm = self.storage.get_alarm()
        dead_fronts = await self._dead_fronts()
        if self.closing:  # lost its lease (or was fenced) while starting
            raise ObjectReset(f"{self.key}: activation ended while starting; retry")
        self._move(Phase.RUNNING)
        self._start_dispatcher()
        self._schedule_alarm_timer(alarm)
        for front in dead_fronts:
            self.enqueue_front_dead(front)

    async def _dead_fronts(self) -> list[str]:
        """Fronts holding this object's sockets that are gone (never raises)."""
        dead = []
        for front in self.sockets.fronts():
            try:
                if await self.host.is_front_dead(front):
                    dead.append(front)
            except Exception as exc:  # the registry is unreachable: the janitor tells later
                logger.warning("%s: could not check front %s: %s", self.key, front, exc)
        return dead

    def _start_dispatcher(self) -> None:
        # A fresh, empty context: the dispatcher must not inherit the turn it takes over
        # from, nor the request that activated the object: asgiref binds thread-sensitive
        # calls (the ORM: records, alarm index) to a request's context, which is gone
        # once that request ends ("ThreadSensitiveContext has exited"). Its ORM calls go
        # to the host's own database thread, never to asgiref's process-wide one, where
        # sync code blocked in async_to_sync on this very object may be waiting.
        self._dispatcher = asyncio.create_task(
            self._dispatch(), name=f"durable:{self.key}", context=self.host.task_context()
        )

    async def _run_on_start(self) -> None:
        self.db.begin_turn()
        ok = False
        try:
            async with asyncio.timeout(self.host.settings.turn_timeout):
                await self.instance.on_start()
            ok = True
        finally:
            self.db.end_turn(ok)
        error = await self._commit_segment()
        if error is not None:
            raise error

    def enqueue(self, event: Event) -> None:
        """Queue an event; raises ObjectOverloaded beyond the mailbox bound."""
        if self.phase is Phase.CLOSED:
            raise ObjectReset(f"{self.key} was evicted; retry")
        if len(self.mailbox) >= self.host.settings.mailbox_size and not event.lifecycle:
            metrics.MAILBOX_OVERLOADS.inc()
            self.host.hot.rejected(self.key)
            raise ObjectOverloaded(
                f"{self.key}: mailbox holds {len(self.mailbox)} events; retry later"
            )
        if self.limit is not None:
            self.limit.admit(self, event)  # raises ObjectOverloaded beyond the limit
        self.mailbox.append(event)
        self.last_event = clock.monotonic()
        self._wake.set()

    def is_idle(self, now: float, idle_timeout: float) -> bool:
        """True when nothing is queued or running and the object sat idle long enough."""
        return (
            not self.mailbox
            and not self.gate.locked
            and not self._running_turns
            and now - self.last_event >= idle_timeout
        )

    def evict(self, reason: str, error: DurableError | None = None) -> asyncio.Task:
        """Start evicting (idempotent): drain (``error`` None) or fail queued events,
        then close and release. A later ``error`` still fails what is queued."""
        if error is not None:
            self._fail_queued(error)
        if self._eviction is None:
            metrics.evicted(reason)
            self._move(Phase.DRAINING)
            self._wake.set()
            self._eviction = asyncio.create_task(
                self._close(reason, error), name=f"durable:evict:{self.key}"
            )
        return self._eviction

    def abandon(self, error: DurableError) -> None:
        """Give up draining: fail what is still queued (the host's drain deadline)."""
        self.evict("abandoned", error)

    def _fail_queued(self, error: DurableError) -> None:
        while self.mailbox:
            event = self.mailbox.popleft()
            settle(event.future, ("err", error.to_dict()))

    async def _close(self, reason: str, error: DurableError | None) -> None:
        logger.debug("evicting %s (%s)", self.key, reason)
        try:
            try:
                if self._dispatcher is not None:
                    if error is None:
                        await self._dispatcher  # graceful: the mailbox drains first
                    else:
                        await self.gate.acquire()  # wait for the running turn to finish
                        self.gate.release()
                        self._dispatcher.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await self._dispatcher
                if self._running_turns:
                    # A turn suspended at an open gate still belongs to this activation.
                    self._turns_done.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.host.settings.turn_timeout):
                            await self._turns_done.wait()
            finally:
                final = error or ObjectReset(f"{self.key} was evicted; retry")
                self._fail_queued(final)
                self._fail_pending(self.pending, final)
                self.pending = []
                self.lease.deadline = 0.0  # nothing of this activation may commit or reply now
                if self._alarm_timer is not None:
                    self._alarm_timer.cancel()
                self.db.close(retire=True)
                self._move(Phase.CLOSED)
                try:
                    await self.host.object_closed(self)
                except Exception:
                    logger.exception("%s: closing bookkeeping failed", self.key)
        finally:
            self.closed.set()

    # -- the dispatcher ------------------------------------------------------------

    async def _dispatch(self) -> None:
        try:
            while True:
                if not self.mailbox:
                    if self.closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self.gate.acquire()
                released = False
                try:
                    released = await self._run_batch()
                finally:
                    if not released:
                        self.gate.release()
                if released:
                    return  # a turn opened its gate: another task dispatches now
        except BaseException as exc:
            if is_fatal(exc):
                raise
            # A bug here must not leave callers waiting forever on a dead dispatcher.
            logger.exception("dispatcher of %s failed", self.key)
            self.evict("dispatcher failed", ObjectReset(f"{self.key} failed internally; retry"))

    async def _run_batch(self) -> bool:
        """Run queued turns in one transaction; True if a turn took the gate over."""
        if self._needs_reset:  # a turn that lost the gate asked for it
            await self._reset("turn failed")
        settings = self.host.settings
        for _ in range(settings.max_batch):
            if not self.mailbox or self._destroyed:
                break
            if not self.lease.is_valid():
                error = LeaseLost(f"{self.key}: lease lapsed; retry")
                self.evict("lease lapsed", error)  # fails what is queued, even if draining
                break
            event = self.mailbox.popleft()
            if event.kind == "alarm" and not await self._begin_alarm(event):
                break
            state = TurnState(self, event=event)
            # The turn runs right here, in the dispatcher's task (no task per turn). If it
            # opens its gate, a new dispatcher task takes over and this one stays the turn.
            token = set_current_turn(state)
            try:
                outcome = await self._turn(event, state)
            finally:
                reset_current_turn(token)
            if outcome == "opened":
                return True
            if outcome == "failed" or self._abort_reason is not None or self._destroy_requested:
                break  # the instance is reset after this commit, before the next event
        await self._commit_segment()
        await self._after_segment()
        return False

    # -- one turn --------------------------------------------------------------------

    async def _turn(self, event: Event, state: TurnState) -> str:
        """Run one event; returns "done", "failed", or "opened" (it opened its gate, so
        it committed and released the gate itself and this task is no longer the
        dispatcher)."""
        self.turns += 1
        self._running_turns += 1
        started = time.perf_counter()
        state.has_gate = True
        self.db.begin_turn()
        failed = False
        deadline = asyncio.timeout(self.host.settings.turn_timeout)
        try:
            async with deadline:
                reply = await self._invoke(event, state)
            if event.call_id and (state.wrote or self.db.turn_wrote):
                # Inside the try: if recording fails (a full disk), the turn fails.
                failpoints.check("turns.record_call")
                self._record_call(event.call_id, reply)
        except BaseException as exc:
            if is_fatal(exc):  # the task itself is being cancelled
                self._turn_ended()
                cut = (PartiallyApplied if state.wrote else ObjectReset)(
                    f"{self.key}: turn cut short"
                )
                settle(event.future, ("err", cut.to_dict()))
                raise
            failed = True
            reply = self._turn_failed(event, state, exc, deadline.expired())
        else:
            state.wrote = self.db.end_turn(ok=True) or state.wrote
            self.outbox.extend(state.outbox)
            if state.destroy:
                self._destroy_requested = True
        elapsed = time.perf_counter() - started
        metrics.turn_finished(self.object_id.namespace, event.kind, failed, elapsed)
        self.host.hot.turn(self.key, elapsed)  # hot-object detection (hot.py)
        self._turn_ended()
        if not state.has_gate:
            # Its time limit struck while it waited to re-enter the gate: it holds no gate
            # and no savepoint (its earlier segments committed), so it touches nothing and
            # its error leaves now; the gate's holder resets the instance.
            settle(event.future, reply)
            return "opened"
        self.pending.append((event.future, reply))
        if state.holds_gate:
            # This turn opened the gate earlier, so a new dispatcher moved on: finish here.
            await self._commit_segment()
            await self._after_segment()
            state.has_gate = False
            self.gate.release()
            return "opened"
        return "failed" if failed else "done"

    def _turn_ended(self) -> None:
        self._running_turns -= 1
        if not self._running_turns:
            self._turns_done.set()

    def _turn_failed(
        self, event: Event, state: TurnState, exc: BaseException, timed_out: bool
    ) -> Reply:
        """Undo a failed turn (if it holds the gate) and build its error reply."""
        if state.has_gate:
            self.db.end_turn(ok=False)
            state.outbox.clear()  # a failed turn sends nothing
            self.sockets.reset()  # its socket changes were rolled back
        if isinstance(exc, TimeoutError | asyncio.CancelledError) and timed_out:
            exc = TurnTimeout(f"{self.key}: turn exceeded its time limit; object reset")
            self._needs_reset = True
        elif isinstance(exc, asyncio.CancelledError):
            exc = ObjectReset(f"{self.key}: turn was cancelled; retry")
        if isinstance(exc, StaleOwner | LeaseLost):
            # The storage refused this activation's token: nothing of this segment
            # may commit or leave; _commit_segment evicts (DESIGN §4).
            self._fenced = exc
        if state.wrote and isinstance(exc, DurableError) and exc.retryable:
            # Part of the turn committed at a gate: a retry would apply it twice.
            exc = PartiallyApplied(f"{self.key}: failed after committing part of its turn: {exc}")
        if event.kind == "alarm":
            _scheduled, retry = self._alarm_attempt or (0.0, 0)
            if retry >= ALARM_MAX_RETRIES:
                logger.error("%s: on_alarm failed %s times; alarm dropped", self.key, retry + 1)
        if self.instance.reset_on_error and state.user_code_ran:
            self._needs_reset = True
        if not isinstance(exc, DurableError):
            logger.info("turn of %s raised %s: %s", self.key, type(exc).__name__, exc)
        return ("err", error_to_dict(exc))

    async def _invoke(self, event: Event, state: TurnState) -> Reply:
        if event.kind == "alarm":
            state.user_code_ran = True
            await self._fire_alarm()
            return ("ok", "null")
        if event.retry and event.kind in ("call", "ws"):
            previous = self._recorded_reply(event.call_id)
            if previous == PARTIAL:
                raise PartiallyApplied(
                    f"{self.key}: call {event.call_id} committed part of its turn before it "
                    "failed or was sent again; it is not run twice"
                )
            if previous is not None:
                return ("ok", previous)
        if event.kind == "ws":
            state.user_code_ran = True
            return ("ok", encode_json(await self._websocket_event(event), "result"))
        if event.kind == "inspect":  # staff inspection and actions (inspection.py)
            result = await inspect_turn(self, event.method, event.payload)
            return ("ok", encode_json(result, "result"))
        if not self.object_class.is_callable_method(event.method):
            raise MethodNotFound(f"{self.key} has no public async method {event.method!r}")
        args, kwargs = json.loads(event.payload)
        method = getattr(self.instance, event.method)
        state.user_code_ran = True
        try:
            result = await method(*args, **kwargs)
        except TypeError as exc:
            if _is_signature_error(exc, method, args, kwargs):
                state.user_code_ran = False  # the method never started
                raise InvalidArgument(f"{event.method}(): {exc}") from exc
            raise
        return ("ok", encode_json(result, "result"))

    # -- call ids (DESIGN §3.7): a retried call returns the first result -----------

    def _record_call(self, call_id: str, reply: Reply) -> None:
        """Keep the reply of a call that wrote, with the turn's last segment. Every 16
        records the oldest entries beyond the window (count or age) go, at most 64 at a
        time: the table stays bounded however short the activations are."""
        conn = self.db.ensure_writable()
        now = clock.wall()
        seq = conn.execute(
            "INSERT OR REPLACE INTO _do_calls(call_id, reply, ts) VALUES (?, ?, ?)",
            (call_id, reply[1], now),
        ).lastrowid
        self._calls_recorded += 1
        if self._calls_recorded % 16 == 1:
            conn.execute(
                "DELETE FROM _do_calls WHERE seq IN "
                "(SELECT seq FROM _do_calls ORDER BY seq LIMIT 64) AND (seq <= ? OR ts < ?)",
                (seq - self.host.settings.call_id_window, now - self.host.settings.call_id_seconds),
            )

    def _recorded_reply(self, call_id: str) -> str | None:
        if self.db.conn is None and not self.db.exists():
            return None
        row = (
            self.db.open()
            .execute("SELECT reply FROM _do_calls WHERE call_id=?", (call_id,))
            .fetchone()
        )
        return None if row is None else row[0]

    # -- gates ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_gate(self) -> AsyncIterator[None]:
        """Commit the turn so far, let other events run, then resume in a new segment.

        A failed commit raises into the turn (its writes so far are undone). A turn
        whose activation ended while it waited raises ObjectReset on re-entry.
        """
        state = get_current_turn()
        if state is None or state.active is not self or state.gate_open:
            yield  # not inside this object's turn: nothing to open
            return
        if self.db.in_savepoint:
            raise StorageError(
                "a turn cannot await another object or open its gate inside "
                "storage.transaction(): the transaction would commit halfway"
            )
        wrote = self.db.end_turn(ok=True) or state.wrote
        event = state.event
        if wrote and event is not None and event.call_id and event.kind in ("call", "ws"):
            # What commits now cannot be undone: mark the call, so that a retry of it is
            # refused (PartiallyApplied) rather than applied twice. Its result replaces
            # the mark when the turn ends well.
            self._record_call(event.call_id, ("ok", PARTIAL))
        self.outbox.extend(state.outbox)
        state.outbox.clear()
        # Shielded from the turn's time limit: a commit whose replies and frames were
        # about to leave must not be cut between its COMMIT and their release.
        error = await run_to_completion(self._commit_segment())
        if error is not None:
            self.db.begin_turn()
            raise type(error)(str(error))
        state.wrote = wrote  # committed: from here on, the turn applied something
        state.gate_open = True
        state.has_gate = False
        self.gate.release()
        if not state.holds_gate:
            state.holds_gate = True
            self._start_dispatcher()  # this task stays with the turn
        try:
            yield
        finally:
            await failpoints.acheck("turns.gate_reacquire")
            await self.gate.acquire(resuming=True)
            state.has_gate = True
            state.gate_open = False
            self.db.begin_turn()
            if self.phase is Phase.CLOSED or self._destroyed:
                raise ObjectReset(f"{self.key} ended while this turn waited; retry")

    def _check_write_allowed(self) -> None:
        state = get_current_turn()
        if state is not None and state.active is self and state.gate_open:
            raise StorageError("storage cannot be written while the turn's gate is open")

    # -- commit and output gate --------------------------------------------------------

    async def _commit_segment(self) -> DurableError | None:
        """Commit the segment, then release its replies (output gate). Returns the
        error that stopped the commit (every caller in the segment got it), or None."""
        pending, self.pending = self.pending, []
        started = clock.monotonic() if audit.ENABLED else 0.0
        wrote = self.db.in_write_tx
        try:
            destroying = await self._commit_storage(bool(pending))
        except (StaleOwner, LeaseLost) as exc:
            if isinstance(exc, StaleOwner):
                metrics.FENCE_REJECTIONS.inc()
            else:
                metrics.LEASE_LOSSES.inc()
            self.db.rollback()
            self.outbox.clear()
            self._destroy_requested = False
            logger.warning("%s refused to commit: %s", self.key, exc)
            self._fail_pending(pending, exc)
            self.evict("fenced", exc)
            return exc
        except BaseException as exc:  # a full disk, the Django database failed, a bug
            if not isinstance(exc, StorageError):
                logger.error("commit of %s failed", self.key, exc_info=exc)
            self.db.rollback()
            self.outbox.clear()
            self.sockets.reset()
            self._destroy_requested = False
            # Nothing committed, so every caller whose own turn succeeded may retry.
            lost = ObjectReset(f"{self.key}: the commit failed ({exc}); retry")
            for fut, reply in pending:
                settle(fut, ("err", lost.to_dict()) if reply[0] == "ok" else reply)
            self._needs_reset = True
            if is_fatal(exc):
                raise
            return lost
        committed = clock.monotonic() if audit.ENABLED else 0.0
        wrote = wrote or destroying
        try:
            await self._after_commit(destroying)
        finally:
            if not wrote and not self.lease.is_valid():
                # Output gate: a read-only answer of a lapsed lease could be stale.
                self._fail_pending(pending, LeaseLost(f"{self.key}: lease lapsed; retry"))
            for fut, reply in pending:
                settle(fut, reply)
        if audit.ENABLED and (wrote or pending):
            audit.segment(self.key, self.lease.token, started, committed, clock.monotonic(), wrote)
        return None

    async def _commit_storage(self, has_pending: bool) -> bool:
        """The fenced commit; returns True when it committed a destroy's tombstone."""
        if self._fenced is not None:
            raise self._fenced
        if self.phase is Phase.CLOSED:
            raise ObjectReset(f"{self.key} was evicted; retry")
        destroying = self._destroy_requested and self.db.mark_destroyed()
        if self.db.in_write_tx:
            await failpoints.acheck("turns.before_commit")
            await self.host.before_commit(self, destroying=destroying)
        elif has_pending and (self.db.claimed or self.db.conn is not None or self.db.exists()):
            # Read-only turns emit too: a stale activation must not answer (§4), also
            # when the open-store cap closed the store. An activation that found no file
            # checks too once a file exists: someone else (the same token, from a lease
            # store that lost its counter) made it.
            self.db.check_fence()
        if not self.lease.is_valid():
            raise LeaseLost(f"{self.key}: lease lapsed before commit; retry")
        self.db.commit()
        return destroying

    async def _after_commit(self, destroying: bool) -> None:
        """What follows a commit; each step's failure is logged, none stops the replies."""
        if self._destroy_requested:
            self._destroy_requested = False
            await self._finish_destroy(destroying)
            return
        if self.storage.alarm_changed:
            self.storage.alarm_changed = False
            try:
                alarm = self.storage.get_alarm()
                self._schedule_alarm_timer(alarm)
                await failpoints.acheck("turns.after_commit")
                await self.host.after_alarm_commit(self, alarm)
            except Exception:
                logger.exception("%s: alarm index not updated after commit", self.key)
        self.host.note_activity(self)
        if self._front_links:
            links, self._front_links = self._front_links, set()
            try:
                await self.host.link_fronts(self, links)
            except Exception:
                logger.exception("%s: fronts not linked after commit", self.key)
        if self.outbox:
            try:
                await self._send_frames()
            except Exception:
                logger.exception("%s: frames not sent after commit", self.key)

    async def _finish_destroy(self, tombstoned: bool) -> None:
        """After the tombstone committed: remove the files while the lease still holds
        (else the next owner finds the tombstone and removes them), and mark the record
        deleted, keeping the fence floor. This activation ends."""
        self._destroyed = True
        self.outbox.clear()
        if self._alarm_timer is not None:
            self._alarm_timer.cancel()
            self._alarm_timer = None
        if tombstoned:
            self.db.fold_wal()
        self.db.close(retire=True)
        if tombstoned and self.lease.is_valid():
            remove_object_files(self.db.path)
        try:
            await self.host.object_destroyed(self)
        except Exception:
            logger.exception("%s: record not marked deleted after destroy", self.key)

    def _fail_pending(self, pending: list[tuple[asyncio.Future, Reply]], exc: DurableError) -> None:
        for fut, _reply in pending:
            settle(fut, ("err", exc.to_dict()))

    async def _after_segment(self) -> None:
        """After a commit: honour abort/destroy requests, or rebuild after a failure."""
        if self._destroyed or self._abort_reason is not None:
            reason = "destroyed" if self._destroyed else str(self._abort_reason)
            self.evict(reason, ObjectReset(f"{self.key} was {reason}; retry"))
        elif self._needs_reset:
            await self._reset("turn failed")

    # -- resets ------------------------------------------------------------------------

    def request_abort(self, reason: str) -> None:
        """Evict after the current turn commits (``ctx.abort``); queued events retry."""
        self._abort_reason = reason

    def request_destroy(self) -> None:
        """Delete storage once the current turn commits (``ctx.destroy``); a turn that
        fails destroys nothing."""
        state = get_current_turn()
        if state is None or state.active is not self:
            raise StorageError("destroy() can only be called from inside a turn")
        state.destroy = True

    async def _reset(self, reason: str) -> None:
        """Build a fresh instance from storage and run ``on_start`` again."""
        self._needs_reset = False
        if self.closing:
            return
        logger.info("resetting %s: %s", self.key, reason)
        self.db.rollback()
        self.instance = self.object_class(self.ctx, self.storage)
        self.sockets.reset()
        self._front_links.clear()
        try:
            await self._run_on_start()
        except BaseException as exc:
            if is_fatal(exc):
                raise
            logger.warning("on_start of %s failed after reset: %s", self.key, exc)
            self.evict("on_start failed", ObjectReset(f"{self.key}: restart failed; retry"))


def _is_signature_error(exc: TypeError, method: Any, args: list, kwargs: dict) -> bool:
    import inspect

    try:
        inspect.signature(method).bind(*args, **kwargs)
    except TypeError:
        return True
    return False
