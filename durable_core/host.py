"""The object host: the part of a process that runs objects (DESIGN §2, §4, §7).

A host activates objects (lease, storage fence, ``on_start``), delivers events to them,
renews its leases in one batch every TTL/3, evicts idle objects, runs the alarm
scheduler, and on shutdown drains every mailbox, commits and releases its leases.
Only a process whose host started may own objects.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import logging
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils import timezone

from . import audit, clock, failpoints, metrics, operations
from ._tasks import RuntimeDatabaseThread, cancel_and_wait
from .alarms import AlarmScheduler
from .conf import get_setting, get_storage_dir
from .exceptions import HostUnavailable, LeaseLost, NotOwner, ObjectNotActive, StaleOwner
from .ids import ObjectId
from .leases.base import Lease, LeaseHolder, LeaseStore
from .records import RecordStore
from .registry import get_object_class
from .router import Router, bind_router, get_router
from .storage.database import ObjectDatabase, ObjectTombstoned
from .storage.files import (
    OpenStoreCache,
    StorageDirLock,
    object_path,
    raise_nofile_limit,
    remove_object_files,
)
from .turns import ActiveObject, Event, Phase

if TYPE_CHECKING:
    from .hosts import HostRegistry
    from .transport import Transport

logger = logging.getLogger(__name__)

_ACTIVATION_ATTEMPTS = 4
PURGE_INTERVAL = 3600.0  # seconds between purges of deleted objects' records (per host)


@dataclass(frozen=True)
class HostSettings:
    """The settings a host reads once at start."""

    lease_ttl: float
    idle_timeout: float
    mailbox_size: int
    turn_timeout: float
    max_batch: int
    synchronous: str
    max_database_size: int
    max_open_stores: int
    max_active_objects: int
    deleted_record_retention: float
    sql_time_limit_ms: int
    call_id_window: int
    call_id_seconds: float
    alarm_poll_interval: float

    @classmethod
    def from_settings(cls) -> HostSettings:
        """Read ``DURABLE_OBJECTS`` (and ``DURABLE_*`` environment variables)."""
        return cls(
            lease_ttl=float(get_setting("LEASE_TTL")),
            idle_timeout=float(get_setting("IDLE_TIMEOUT")),
            mailbox_size=int(get_setting("MAILBOX_SIZE")),
            turn_timeout=float(get_setting("TURN_TIMEOUT")),
            max_batch=int(get_setting("MAX_BATCH")),
            synchronous=str(get_setting("SYNCHRONOUS")).upper(),
            max_database_size=int(get_setting("MAX_DATABASE_SIZE")),
            max_open_stores=int(get_setting("MAX_OPEN_STORES")),
            max_active_objects=int(get_setting("MAX_ACTIVE_OBJECTS")),
            deleted_record_retention=float(get_setting("DELETED_RECORD_RETENTION")),
            sql_time_limit_ms=int(get_setting("SQL_TIME_LIMIT_MS")),
            call_id_window=int(get_setting("CALL_ID_WINDOW")),
            call_id_seconds=float(get_setting("CALL_ID_SECONDS")),
            alarm_poll_interval=float(get_setting("ALARM_POLL_INTERVAL")),
        )


class ObjectHost:
    """Runs durable objects in this process."""

    def __init__(
        self,
        lease_store: LeaseStore,
        *,
        lock_storage_dir: bool = True,
        registry: HostRegistry | None = None,
        transport: Transport | None = None,
        host_id: str | None = None,
        records: RecordStore | None = None,
        router: Router | None = None,
    ) -> None:
        self.settings = HostSettings.from_settings()
        self.records = records or RecordStore()
        self.router = router or get_router()
        self.lease_store = lease_store
        self.registry = registry  # None in embedded mode: this host owns everything
        self.transport = transport
        self.storage_dir = get_storage_dir()
        self.host_id = host_id or new_host_id()
        self.pid = os.getpid()
        self.started_at = clock.wall()
        self.active: dict[str, ActiveObject] = {}
        self.stores = OpenStoreCache(self.settings.max_open_stores)
        self.alarms = AlarmScheduler(
            self.settings.alarm_poll_interval, self.records.claim_due, self.router.deliver_alarm
        )
        self.running = False
        self.stopping = False
        self._ready = asyncio.Event()
        self._activating: dict[str, asyncio.Task] = {}
        self._dir_lock = StorageDirLock(self.storage_dir) if lock_storage_dir else None
        self._tasks: list[asyncio.Task] = []
        self._activity: dict[str, ActiveObject] = {}
        self.db_thread = RuntimeDatabaseThread()
        self.hot = operations.hot_objects(self)  # hot-object detection (hot.py)

    # -- start and stop ----------------------------------------------------------------

    def bind(self) -> None:
        """Bind this host into the current context: its router answers ``get_router()``
        (objects calling objects) and the ORM goes to its database thread."""
        bind_router(self.router)
        self.db_thread.bind()

    def task_context(self) -> contextvars.Context:
        """A fresh context bound to this host, for the tasks it starts."""
        context = contextvars.Context()
        context.run(self.bind)
        return context

    async def start(self) -> None:
        """Take the storage directory, start renewal, eviction and the alarm scheduler."""
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if self._dir_lock is not None:
            self._dir_lock.acquire()
        raise_nofile_limit()
        if self.transport is not None:
            await self.transport.start(self.router.handle_message)
        if self.registry is not None:
            self.registry.info["channel"] = self.transport.channel  # type: ignore[union-attr]
            self.registry.on_declared_dead = self._declared_dead
            await self.registry.start(self.describe)
        self.running = True
        context = self.task_context()
        self._tasks = [
            asyncio.create_task(self._renew_loop(), name="durable:renew", context=context),
            asyncio.create_task(
                self._housekeeping_loop(), name="durable:housekeeping", context=context
            ),
        ]
        if self.registry is not None:
            self._tasks.append(
                asyncio.create_task(self._front_janitor(), name="durable:fronts", context=context)
            )
        context.run(self.alarms.start)
        self._ready.set()
        logger.info("object host %s started (storage %s)", self.host_id, self.storage_dir)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Graceful shutdown: drain mailboxes, commit, release every lease.

        Leases stay renewed while objects drain. What is still queued after
        ``drain_timeout`` (default: one lease TTL) fails with a retryable error, so a
        stop never outlasts the drain by more than the running turns.
        """
        if not self.running:
            return
        self.stopping = True
        await self.alarms.stop()
        if self._activating:  # activations under way finish (and are drained) first
            await asyncio.wait(list(self._activating.values()), timeout=self.settings.lease_ttl)
        evictions = [obj.evict("host shutdown") for obj in list(self.active.values())]
        if evictions:
            budget = self.settings.lease_ttl if drain_timeout is None else drain_timeout
            _done, late = await asyncio.wait(evictions, timeout=budget)
            if late:
                logger.warning("%s objects still draining at the deadline", len(late))
                for obj in list(self.active.values()):
                    obj.abandon(HostUnavailable(f"host {self.host_id} shut down; retry"))
                await asyncio.wait(late, timeout=self.settings.turn_timeout)
        await cancel_and_wait(self._tasks)
        try:
            await self._flush_activity()
            if self.registry is not None:
                await self.registry.stop()
            if self.transport is not None:
                await self.transport.stop()
            await self.lease_store.close()
        finally:  # whatever failed above, the thread and the directory lock are freed
            self.db_thread.close()
            if self._dir_lock is not None:
                self._dir_lock.release()
            self.running = False
        logger.info("object host %s stopped", self.host_id)

    # -- delivery ----------------------------------------------------------------------

    async def deliver(self, object_id: ObjectId, event: Event) -> None:
        """Queue ``event`` on the object, activating it here if needed.

        Raises NotOwner when another host holds the lease, HostUnavailable while
        this host stops. A call arriving during an eviction waits for it to finish and
        is then routed afresh by activating again.
        """
        await self._ready.wait()
        while True:
            if self.stopping:
                raise HostUnavailable(f"host {self.host_id} is shutting down")
            active = self.active.get(object_id.key)
            if active is None and _is_passive(event) and object_id.key not in self._activating:
                raise ObjectNotActive(f"{object_id.key} is not active on {self.host_id}")
            if active is None:
                active = await self._activate(object_id)
            if active.closing:
                await active.closed.wait()
                if self.active.get(object_id.key) is active:
                    del self.active[object_id.key]  # never route to a closed activation
                continue
            active.enqueue(event)
            return

    async def _activate(self, object_id: ObjectId) -> ActiveObject:
        """Activate once for every caller waiting on the same object: the activation
        runs in its own task, so a caller that is cancelled cancels only its wait."""
        key = object_id.key
        task = self._activating.get(key)
        if task is None:
            task = asyncio.create_task(
                self._activate_new(object_id),
                name=f"durable:activate:{key}",
                context=self.task_context(),  # never the first caller's request context
            )
            self._activating[key] = task
            task.add_done_callback(self._activation_done)
        return await asyncio.shield(task)

    def _activation_done(self, task: asyncio.Task) -> None:
        key = task.get_name().removeprefix("durable:activate:")
        if self._activating.get(key) is task:
            del self._activating[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter re-raises it itself

    async def _activate_new(self, object_id: ObjectId) -> ActiveObject:
        object_class = get_object_class(object_id.namespace)
        key = object_id.key
        for _attempt in range(_ACTIVATION_ATTEMPTS):
            lease = await self.lease_store.acquire(key, self.host_id)
            if isinstance(lease, LeaseHolder) and await self._is_proven_dead(lease.host_id):
                # Its owner's process is gone (seen on this machine): take the lease now
                # rather than after its TTL; the higher token keeps the fence in force. A
                # lapsed heartbeat is no proof: its holder may be paused, so we wait.
                lease = await self.lease_store.take_over(key, lease, self.host_id)
            if isinstance(lease, LeaseHolder):
                raise NotOwner(f"{key} is owned by {lease.host_id}")
            metrics.LEASE_ACQUISITIONS.inc()
            db = ObjectDatabase(
                object_path(self.storage_dir, object_id.namespace, object_id.hex),
                lease.token,
                synchronous=self.settings.synchronous,
                max_size=self.settings.max_database_size,
                cache=self.stores,
            )
            try:
                await self._claim_storage(object_id, db, lease)
            except StaleOwner as exc:
                metrics.FENCE_REJECTIONS.inc()
                # The lease store forgot tokens (a restart, an embedded process): push its
                # counter above the stored fence and take a fresh, higher token.
                db.close()
                await self._release_quietly(lease)
                await self.lease_store.raise_fence(key, getattr(exc, "stored_fence", 0))
                continue
            except BaseException:  # a storage or database error, or a cancellation
                db.close()
                await self._release_quietly(lease)
                raise
            active = ActiveObject(self, object_id, object_class, lease, db)
            try:
                await active.start()
            except BaseException:
                # One way out for every failure: the eviction closes the storage, fails
                # whatever queued, releases the lease and marks the activation closed.
                await asyncio.shield(active.evict("activation failed"))
                raise
            if self.stopping:
                # The drain took its list of objects before this one was ready: drain
                # it now, or it would outlive the host with its lease (found by the
                # simulation, seed 1140).
                await asyncio.shield(active.evict("host shutdown"))
                raise HostUnavailable(f"host {self.host_id} is shutting down")
            self.active[key] = active
            if len(self.active) > self.settings.max_active_objects:
                self.evict_least_recently_used()
            metrics.ACTIVATIONS.labels(object_id.namespace).inc()
            logger.debug("activated %s with token %s", key, lease.token)
            return active
        raise StaleOwner(f"{key}: could not obtain a token above the stored fence")

    async def _is_proven_dead(self, host_id: str) -> bool:
        return (
            self.registry is not None
            and bool(host_id)
            and await self.registry.is_proven_dead(host_id)
        )

    async def _release_quietly(self, lease: Lease) -> None:
        """Release a lease; if the store is unreachable it lapses at its TTL instead."""
        try:
            failpoints.check("host.release")
            await self.lease_store.release(lease)
        except Exception as exc:
            logger.warning("lease of %s not released (it lapses): %s", lease.key, exc)

    def describe(self) -> dict:
        """What the heartbeat publishes about this host: its object count, and per
        namespace its active objects and the sockets it holds as a front (inspection)."""
        from .inspection import local_figures

        return {"objects": len(self.active), **local_figures(self), **operations.figures(self)}

    async def _claim_storage(self, object_id: ObjectId, db: ObjectDatabase, lease: Lease) -> None:
        """Fence check at activation (DESIGN §4); a file not yet made is claimed on its
        first write, at the floor kept in the object's record. A destroyed file (its
        tombstone committed, its removal cut short) is finished off here."""
        failpoints.check("host.claim")
        if db.exists():
            started = clock.monotonic() if audit.ENABLED else 0.0
            try:
                await db.activate()
            except ObjectTombstoned as dead:
                db.close()
                await self.records.mark_deleted(object_id, dead.token)
                if lease.is_valid():
                    remove_object_files(db.path)
                raise StaleOwner(f"{object_id.key}: removed a destroyed file; retry") from None
            if audit.ENABLED:
                audit.claim(object_id.key, db.token, started, clock.monotonic())
            return
        db.floor = await self.records.fence_floor(object_id)
        if db.floor >= db.token:
            exc = StaleOwner(f"{object_id.key}: record fence floor {db.floor} >= token")
            exc.stored_fence = db.floor  # type: ignore[attr-defined]
            raise exc

    async def object_closed(self, active: ActiveObject) -> None:
        """Called by an evicted object after its storage closed: forget it, release."""
        if self.active.get(active.key) is active:
            del self.active[active.key]
        failpoints.check("host.object_closed")
        if not await operations.hand_over(self, active):  # a move hands it to its target
            await self._release_quietly(active.lease)

    async def object_destroyed(self, active: ActiveObject) -> None:
        """After a destroy's tombstone committed: the record says deleted (unless a newer
        owner recorded itself meanwhile), its alarm index is cleared, the floor kept."""
        await self.records.mark_deleted(active.object_id, active.lease.token)

    # -- commit hooks (called by turns) ---------------------------------------------------

    async def before_commit(self, active: ActiveObject, *, destroying: bool = False) -> None:
        """Durable side records that must exist before a commit: record and alarm index.

        A destroy first raises the record's fence floor to its token (harmless if the
        commit then fails): once the file is gone, the floor still refuses older owners.
        """
        if destroying:
            await self.records.raise_floor(active.object_id, active.lease.token)
            return
        if not active.has_record:
            await self.records.ensure(active.object_id, active.lease.token)
            active.db.set_meta("recorded", 1)
            active.has_record = True
        if active.storage.alarm_changed:
            alarm = active.storage.get_alarm()
            if alarm is not None:
                await self.records.set_alarm(active.object_id, alarm)

    # -- WebSocket fronts (DESIGN §9) ------------------------------------------------------

    async def is_front_dead(self, front: str) -> bool:
        """True when the front process holding some sockets is gone."""
        if front == self.host_id:
            return False
        if self.registry is None:
            return True  # embedded: the only front is this process; others are past ones
        return await self.registry.is_dead(front)

    async def send_to_front(self, front: str, envelope: dict) -> None:
        """Deliver an envelope of frames to the front holding those sockets."""
        from .consumers import get_front

        if front == self.host_id:
            get_front().deliver(envelope)
            return
        if self.registry is None or self.transport is None:
            return  # embedded: a past process's sockets are gone with it
        channel = await self.registry.get_channel(front)
        if channel is None:
            return  # the front is gone; its sockets are closed by the front janitor
        try:
            await self.transport.send(channel, envelope)
        except Exception as exc:
            logger.warning("frames for %s to front %s not sent: %s", envelope["object"], front, exc)

    async def _declared_dead(self) -> None:
        """Others declared this host dead (it was paused or cut off): its sockets' objects
        already closed them, so close them here too; clients reconnect (1012)."""
        from .consumers import CLOSE_RESTART, get_front

        logger.warning("host %s was declared dead; closing its WebSockets", self.host_id)
        await get_front().close_all(CLOSE_RESTART)

    async def link_fronts(self, active: ActiveObject, fronts: set[str]) -> None:
        """Remember which objects hold sockets on each front, so that when a front dies
        some host tells those objects even if they are hibernating."""
        if self.registry is not None:
            await self.registry.link_front_objects(fronts, active.key)

    async def _front_janitor(self) -> None:
        """Tell objects whose sockets were on a dead front to close them."""
        while True:
            await asyncio.sleep(self.registry.interval)  # type: ignore[union-attr]
            try:
                claimed = await self.registry.claim_dead_front_objects()  # type: ignore[union-attr]
                await asyncio.gather(
                    *(
                        self.router.send_event(
                            ObjectId(*key.rsplit(":", 1)), "front_dead", json.dumps({"front": f})
                        )
                        for f, key in claimed
                    ),
                    return_exceptions=True,
                )
            except Exception:
                logger.exception("front janitor failed")

    def note_activity(self, active: ActiveObject) -> None:
        """Remember that ``active`` ran a turn; records are updated in batches."""
        self._activity[active.key] = active

    async def after_alarm_commit(self, active: ActiveObject, alarm: float | None) -> None:
        """After the commit: clear the index entry of a removed alarm, or refresh it."""
        if alarm is None:
            await self.records.clear_alarm(active.object_id)
        else:
            await self.records.set_alarm(active.object_id, alarm)

    # -- background loops ------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        interval = self.settings.lease_ttl / 3
        while True:
            await asyncio.sleep(interval)
            await self.renew_once()

    async def renew_once(self) -> None:
        """Renew every lease of a running or draining object in one batch; objects whose
        lease the store no longer holds are evicted. Only objects of this round's
        snapshot are judged: one activated during the round trip is not in it."""
        snapshot = [(a, a.lease) for a in self.active.values() if a.phase is not Phase.CLOSED]
        if not snapshot:
            return
        try:
            failpoints.check("host.renew")
            leases = await self.lease_store.renew([lease for _active, lease in snapshot])
            renewed = {id(lease) for lease in leases}
        except Exception:
            logger.exception("lease renewal failed; leases run out at their deadline")
            return
        for active, lease in snapshot:
            if id(lease) not in renewed and active.phase is not Phase.CLOSED:
                logger.warning("lease of %s lost", active.key)
                metrics.LEASE_LOSSES.inc()
                active.evict("lease lost", LeaseLost(f"{active.key}: lease lost; retry"))

    async def _housekeeping_loop(self) -> None:
        idle = self.settings.idle_timeout
        interval = max(0.05, min(idle / 2, 5.0))
        next_purge = clock.monotonic() + PURGE_INTERVAL
        while True:
            await asyncio.sleep(interval)
            now = clock.monotonic()
            for active in list(self.active.values()):
                if not active.closing and active.is_idle(now, idle):
                    active.evict("idle")
            self.evict_least_recently_used()
            try:
                await self._flush_activity()
            except Exception:
                logger.exception("could not record object activity")
            retention = self.settings.deleted_record_retention
            if retention > 0 and clock.monotonic() >= next_purge:
                next_purge = clock.monotonic() + PURGE_INTERVAL
                try:
                    purged = await self.records.purge_deleted(retention)
                    if purged:
                        logger.info("purged the records of %s deleted objects", purged)
                except Exception:
                    logger.exception("could not purge the records of deleted objects")

    def evict_least_recently_used(self) -> int:
        """Bring the active objects down to MAX_ACTIVE_OBJECTS by evicting the least
        recently used idle ones (an object with queued or running turns stays); returns
        how many were evicted. Memory per host stays bounded however many objects
        anonymous clients create."""
        excess = len(self.active) - self.settings.max_active_objects
        if excess <= 0:
            return 0
        idle = [
            a
            for a in self.active.values()
            if not a.closing and not a.mailbox and not a.gate.locked and not a._running_turns
        ]
        idle.sort(key=lambda a: a.last_event)
        for active in idle[:excess]:
            active.evict("over capacity")
        return min(excess, len(idle))

    async def _flush_activity(self) -> None:
        """Batched record upkeep (DESIGN §10): turns only note their object in memory
        (``note_activity``); every housekeeping pass (at most every 5 s, or
        IDLE_TIMEOUT/2) writes ``last_active`` and ``storage_bytes`` of the objects that
        ran turns since, in one transaction, and once more at shutdown."""
        if not self._activity:
            return
        batch, self._activity = self._activity, {}
        now = timezone.now()
        await self.records.touch_many(
            {(a.object_id.namespace, a.object_id.hex): (now, _size(a)) for a in batch.values()}
        )


def _is_passive(event: Event) -> bool:
    """Inspection reads and evictions never activate an object (inspection.py)."""
    from .inspection import PASSIVE_ACTIONS

    return event.kind == "inspect" and event.method in PASSIVE_ACTIONS


def _size(active: ActiveObject) -> int | None:
    """Bytes the object's database uses: pages in use if open, else the file's size
    (evicted since its turn; the last connection's close checkpointed the WAL)."""
    if active.db.conn is not None:
        return active.db.size()
    try:
        return active.db.path.stat().st_size
    except FileNotFoundError:
        return None  # never written, or destroyed (the record says so itself)


_host: ObjectHost | None = None


def new_host_id() -> str:
    """``node:pid:nonce``: a restarted process is a new host and owns nothing of its past."""
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def make_redis_client(url: str | None = None):
    """An asyncio Redis client for ``REDIS_URL`` that retries a command a few times on a
    dropped connection (redis-py's asyncio default is no retry: after a Redis restart
    the first command on every pooled connection would fail). Every command we send is
    safe to repeat: scripts are idempotent or hand out a fresh, higher token, and a
    repeated message is recognised by its attempt key."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    pool = aioredis.BlockingConnectionPool.from_url(
        url or get_setting("REDIS_URL"),
        max_connections=int(get_setting("REDIS_MAX_CONNECTIONS")),
        # Wait for a free connection (redis-py's default pool raises at 100), but not
        # so long that a lease renewal queued behind a burst lapses: it fails and the
        # next renewal round tries again within the TTL.
        timeout=float(get_setting("LEASE_TTL")) / 4,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        health_check_interval=10,
    )
    return aioredis.Redis.from_pool(pool)


def get_host() -> ObjectHost | None:
    """This process's object host, if one was started."""
    return _host


def build_host() -> ObjectHost:
    """A host for this process's mode: embedded, or cluster when REDIS_URL is set."""
    from .conf import is_cluster_mode

    ttl = float(get_setting("LEASE_TTL"))
    if not is_cluster_mode():
        from .leases.local import LocalLeaseStore

        return ObjectHost(
            LocalLeaseStore(ttl), lock_storage_dir=bool(get_setting("LOCK_STORAGE_DIR"))
        )
    from .hosts import HostRegistry
    from .leases.redis import RedisLeaseStore
    from .transport import get_transport

    client = make_redis_client()
    prefix = get_setting("KEY_PREFIX")
    host_id = new_host_id()
    info = {"id": host_id, "pid": os.getpid(), "started": clock.wall()}
    registry = HostRegistry(
        client, prefix, info, float(get_setting("HEARTBEAT_INTERVAL")), lease_ttl=ttl
    )
    # Cluster hosts share STORAGE_DIR on one machine: the fence, not a lock, guards it.
    return ObjectHost(
        RedisLeaseStore(client, ttl=ttl, prefix=prefix),
        lock_storage_dir=False,
        registry=registry,
        transport=get_transport(),
        host_id=host_id,
    )


async def start_host() -> ObjectHost:
    """Start this process's host and route calls to it (idempotent)."""
    global _host
    if _host is not None and _host.running:
        return _host
    host = build_host()
    # Everything imported so far lives as long as the process: keep it out of the
    # collector's full passes, which otherwise stall every turn for tens of ms.
    gc.collect()
    gc.freeze()
    get_router().host = host  # calls arriving while it starts wait for it to be ready
    try:
        await host.start()
    except BaseException:
        get_router().host = None
        raise
    _host = host
    return host


async def stop_host() -> None:
    """Stop this process's host gracefully (drain, commit, release)."""
    global _host
    host, _host = _host, None
    if host is not None:
        # The router keeps its host while it drains: answers to calls from other fronts
        # still leave, and copies of their attempts are still recognised.
        await host.stop()
    get_router().host = None
