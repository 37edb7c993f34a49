"""A seeded, deterministic simulation of a cluster in one process (the FoundationDB
method): the real runtime, with its seams replaced.

Several ``ObjectHost`` instances run the real turns, gates, leases, fences, routing and
SQLite files, on an event loop whose clock is virtual (time jumps to the next timer,
so a run of simulated minutes takes a second). Leases live in one shared in-memory
store, records and the alarm index in memory, messages travel through an in-memory
transport; nothing uses a thread. Clients send random operations (writes, failing
writes, slow turns beyond their time limit, turns that open their gate, calls between
objects, destroys, alarms) through random hosts, while the run injects faults: the
failpoints of ``durable_core.failpoints``, hosts cut off from the lease store (their
leases lapse and another host takes over), evictions, and graceful drains followed by
a restart. A model checks, as the run goes and at its end:

- an acknowledged write is committed in the object's file when its reply arrives
  (output gate) and is still there at the end, unless the object was destroyed since;
- no call is applied twice (every operation records how often it ran);
- no commit comes from a lower token after a higher one, for every file;
- no file is removed unless its tombstone committed, and never while another owner
  holds a claim on it;
- the event loop never stalls or spins without progress;
- at the end, after every host drained, no task and no lease is left behind.

Every run prints its seed; ``PYTHONHASHSEED=0 python manage.py simulate --seed N``
replays it exactly (``make simulate SEEDS=N`` runs seeds 1..N).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import random
import selectors
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import override_settings

from .. import clock, failpoints
from .. import host as host_module
from .. import turns as turns_module
from ..exceptions import DurableError, StorageError
from ..host import ObjectHost
from ..ids import ObjectId, reset_id_key_cache
from ..leases.base import Lease, LeaseHolder, LeaseStore
from ..leases.local import LocalLeaseStore
from ..objects import DurableObject
from ..records import RecordStore
from ..registry import get_namespace
from ..router import Router
from ..storage import database
from ..storage.files import object_path, remove_object_files

logger = logging.getLogger(__name__)

EPOCH = 1_800_000_000.0  # the wall clock of a simulation starts here (virtual seconds)
NAMESPACE = "sim.Account"

SETTINGS = {
    "LEASE_TTL": 1.0,
    "TURN_TIMEOUT": 1.5,  # longer than a lease: a turn can outlive its owner's lease
    "CALL_TIMEOUT": 4.0,
    "IDLE_TIMEOUT": 0.6,
    "MAILBOX_SIZE": 200,
    "ALARM_POLL_INTERVAL": 0.25,
    "HEARTBEAT_INTERVAL": 0.3,
    "CALL_ID_WINDOW": 1000,
    "MAX_OPEN_STORES": 8,
}


class SimulationFailure(AssertionError):
    """The model found a broken guarantee; the message says which and the seed."""


class SimulationStuck(SimulationFailure):
    """Every task waits and no timer is due: the run can never finish."""


# -- the object the clients drive ---------------------------------------------------------


class Account(DurableObject):
    """Records how often each operation ran: a count above one is a double apply."""

    namespace = NAMESPACE

    def _apply(self, op: str) -> int:
        count = self.storage.get(f"op:{op}", 0) + 1
        self.storage.put(f"op:{op}", count)
        return count

    async def write(self, op: str) -> int:
        return self._apply(op)

    async def fail(self, op: str) -> None:
        self._apply(op)
        raise ValueError("this turn fails after writing")

    async def slow(self, op: str, delay: float) -> int:
        count = self._apply(op)
        await asyncio.sleep(delay)  # beyond TURN_TIMEOUT sometimes: the turn is cut
        return count

    async def gated(self, op: str, delay: float) -> int:
        count = self._apply(op)
        async with self.ctx.open_gate():
            await asyncio.sleep(delay)
        self._apply(f"{op}/after")
        return count

    async def relay(self, op: str, other: str) -> int:
        self._apply(op)
        return await get_namespace(NAMESPACE).get_by_name(other).write(f"{op}/r")

    async def destroy(self, op: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.ctx.destroy()

    async def arm(self, op: str, delay: float) -> None:
        self.storage.set_alarm(clock.wall() + delay)
        self.storage.put("armed", op)

    async def on_alarm(self, info: Any) -> None:
        armed = self.storage.get("armed")
        if armed is not None:
            self._apply(f"{armed}/alarm")


# -- the virtual clock --------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Never waits: a select with a timeout moves the virtual clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualLoop | None = None

    def select(self, timeout: float | None = None) -> list:
        assert self.loop is not None
        return self.loop._advance(timeout)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time, watching itself for stalls and spins."""

    def __init__(self, stall_limit: float, spin_limit: int) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0
        self.stall_limit = stall_limit
        self.spin_limit = spin_limit
        self._spins = 0
        self._last_real = time.perf_counter()
        self.worst_stall = 0.0
        self.failure: SimulationFailure | None = None

    def time(self) -> float:
        return self._now

    def _advance(self, timeout: float | None) -> list:
        real = time.perf_counter()
        stalled, self._last_real = real - self._last_real, real
        self.worst_stall = max(self.worst_stall, stalled)
        if stalled > self.stall_limit and self.failure is None:
            self.failure = SimulationFailure(f"the event loop stalled {stalled:.2f}s in one step")
        if timeout is None:
            raise SimulationStuck("every task waits and no timer is due: the run hangs")
        if timeout > 0:
            self._now += timeout
            self._spins = 0
        else:
            self._spins += 1
            if self._spins > self.spin_limit and self.failure is None:
                self.failure = SimulationFailure(
                    f"the event loop ran {self._spins} steps without time passing (a spin)"
                )
                raise self.failure
        return []


# -- in-memory seams ---------------------------------------------------------------------------


class MemoryRecords(RecordStore):
    """Object records and the alarm index in memory (one per simulated cluster)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def _row(self, object_id: ObjectId) -> dict[str, Any]:
        return self.rows.setdefault(
            object_id.key,
            {"id": object_id, "floor": 0, "deleted": False, "alarm": None, "claim": None},
        )

    async def fence_floor(self, object_id: ObjectId) -> int:
        row = self.rows.get(object_id.key)
        return 0 if row is None else row["floor"]

    async def ensure(self, object_id: ObjectId, token: int) -> None:
        row = self._row(object_id)
        row["floor"] = max(row["floor"], token)
        row["deleted"] = False

    async def raise_floor(self, object_id: ObjectId, token: int) -> None:
        row = self._row(object_id)
        row["floor"] = max(row["floor"], token)

    async def mark_deleted(self, object_id: ObjectId, token: int) -> None:
        row = self._row(object_id)
        if row["floor"] > token:
            return
        row.update(floor=token, deleted=True, alarm=None, claim=None)

    async def touch_many(self, activity: dict) -> None:
        return None

    async def purge_deleted(self, older_than: float) -> int:
        return 0  # a run is shorter than any retention

    async def set_alarm(self, object_id: ObjectId, when: float) -> None:
        row = self.rows.get(object_id.key)
        if row is not None:
            row.update(alarm=when, claim=None)

    async def clear_alarm(self, object_id: ObjectId) -> None:
        row = self.rows.get(object_id.key)
        if row is not None:
            row.update(alarm=None, claim=None)

    async def claim_due(self, now: float) -> list[tuple[str, str, str]]:
        claimed = []
        for row in self.rows.values():
            due = row["alarm"] is not None and row["alarm"] <= now
            if due and (row["claim"] is None or row["claim"] < now):
                row["claim"] = now + 30.0
                oid = row["id"]
                claimed.append((oid.namespace, oid.hex, oid.name or ""))
        return claimed


class HostLeases(LeaseStore):
    """One host's view of the shared lease store; renewals fail while it is cut off."""

    def __init__(self, shared: LocalLeaseStore) -> None:
        self.shared = shared
        self.ttl = shared.ttl
        self.cut_off = False

    async def acquire(self, key: str, host_id: str) -> Lease | LeaseHolder:
        self._reach()
        return await self.shared.acquire(key, host_id)

    async def renew(self, leases: list[Lease]) -> list[Lease]:
        self._reach()
        return await self.shared.renew(leases)

    async def release(self, lease: Lease) -> None:
        self._reach()
        await self.shared.release(lease)

    async def get_holder(self, key: str) -> LeaseHolder | None:
        return await self.shared.get_holder(key)

    async def take_over(self, key: str, dead: LeaseHolder, host_id: str) -> Lease | LeaseHolder:
        self._reach()
        return await self.shared.take_over(key, dead, host_id)

    async def raise_fence(self, key: str, floor: int) -> None:
        await self.shared.raise_fence(key, floor)

    def _reach(self) -> None:
        if self.cut_off:
            raise ConnectionError("the lease store is unreachable from this host")


class MemoryRegistry:
    """The host registry over the simulation's table of hosts."""

    def __init__(self, sim: Simulation, host_id: str) -> None:
        self.sim = sim
        self.host_id = host_id
        self.info: dict[str, Any] = {"id": host_id}
        self.interval = SETTINGS["HEARTBEAT_INTERVAL"]
        self.on_declared_dead = None

    async def start(self, describe: Callable[[], dict]) -> None:
        self.sim.registered[self.host_id] = self.info["channel"]

    async def stop(self) -> None:
        self.sim.registered.pop(self.host_id, None)

    async def is_dead(self, host_id: str) -> bool:
        return host_id not in self.sim.registered or self.sim.is_cut_off(host_id)

    async def is_proven_dead(self, host_id: str) -> bool:
        return host_id not in self.sim.registered

    def in_grace(self) -> bool:
        return False

    async def get_channel(self, host_id: str) -> str | None:
        return self.sim.registered.get(host_id)

    async def link_front_objects(self, fronts: set[str], key: str) -> None:
        return None

    async def claim_dead_front_objects(self, batch: int = 100) -> list[tuple[str, str]]:
        return []

    async def live_host_ids(self) -> list[str]:
        return [h for h in self.sim.registered if not self.sim.is_cut_off(h)]


class MemoryTransport:
    """Messages between the simulated hosts' routers (copied, delivered in order)."""

    def __init__(self, sim: Simulation, channel: str) -> None:
        self.sim = sim
        self.channel = channel
        self.host: Any = None

    async def start(self, handler: Callable) -> None:
        self.sim.channels[self.channel] = (handler, self.host)

    async def stop(self) -> None:
        self.sim.channels.pop(self.channel, None)

    async def send(self, channel: str, message: dict) -> None:
        target = self.sim.channels.get(channel)
        if target is None:
            return  # nobody listens there any more: lost, as on a real network
        handler, host = target
        copy = json.loads(json.dumps(message))
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(handler(copy)), context=host.task_context()
        )


# -- the model -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Op:
    """One client operation and what became of it."""

    id: str
    name: str  # the object's name
    method: str
    args: list
    sent: float
    outcome: str = "pending"  # ok | error
    error: str = ""
    done: float = 0.0


class Simulation:
    """One seeded run."""

    def __init__(
        self,
        seed: int,
        root: Path,
        *,
        hosts: int = 3,
        objects: int = 6,
        clients: int = 4,
        ops_per_client: int = 25,
        fault_rate: float = 1.0,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.root = root
        self.host_count = hosts
        self.names = [f"acct-{i}" for i in range(objects)]
        self.clients = clients
        self.ops_per_client = ops_per_client
        self.fault_rate = fault_rate
        self.shared_leases = LocalLeaseStore(SETTINGS["LEASE_TTL"])
        self.records = MemoryRecords()
        self.registered: dict[str, str] = {}
        self.channels: dict[str, tuple[Callable, Any]] = {}
        self.hosts: list[Any] = []
        self.cut: set[str] = set()
        self.ops: list[Op] = []
        self.trace: list[str] = []
        self.failures: list[str] = []
        self.max_token: dict[str, int] = {}
        self._host_seq = itertools.count()
        self._op_seq = itertools.count()
        self.loop: VirtualLoop | None = None

    # -- hosts --------------------------------------------------------------------

    def is_cut_off(self, host_id: str) -> bool:
        return host_id in self.cut

    async def start_host(self) -> ObjectHost:
        n = next(self._host_seq)
        host_id = f"sim:{n}:{self.seed}"
        router = Router()
        transport = MemoryTransport(self, f"sim.inbox.{n}")
        host = ObjectHost(
            HostLeases(self.shared_leases),
            lock_storage_dir=False,
            registry=MemoryRegistry(self, host_id),  # type: ignore[arg-type]
            transport=transport,  # type: ignore[arg-type]
            host_id=host_id,
            records=self.records,
            router=router,
        )
        router.host = host
        transport.host = host
        await host.start()
        self.hosts.append(host)
        self.note(f"start {host_id}")
        return host

    def live_hosts(self) -> list[Any]:
        return [h for h in self.hosts if h.running and not h.stopping]

    def object_id(self, name: str) -> ObjectId:
        return get_namespace(NAMESPACE).get_by_name(name).id

    def note(self, line: str) -> None:
        assert self.loop is not None
        self.trace.append(f"{self.loop.time():.4f} {line}")

    def fail(self, message: str) -> None:
        self.failures.append(message)
        self.note(f"FAIL {message}")

    # -- storage observations ------------------------------------------------------------

    def path(self, name: str) -> Path:
        oid = self.object_id(name)
        return object_path(self.root / "objects", oid.namespace, oid.hex)

    def read_file(self, path: Path) -> dict[str, Any] | None:
        """The committed state of an object file (None when there is none)."""
        if not path.exists():
            return None
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0)
        try:
            meta = dict(conn.execute("SELECT key, value FROM _do_meta"))
            kv = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM _do_kv")}
        except sqlite3.OperationalError:
            return None  # a file being created: no schema yet
        finally:
            conn.close()
        return {"meta": meta, "kv": kv}

    def observe_commit(self, path: Path, token: int) -> None:
        key = str(path)
        highest = self.max_token.get(key, 0)
        if token < highest:
            self.fail(f"{path.name}: commit from token {token} after token {highest}")
        self.max_token[key] = max(highest, token)

    def observe_removal(self, path: Path) -> None:
        state = self.read_file(path)
        if state is None:
            return
        if "destroyed" not in state["meta"]:
            self.fail(f"{path.name}: removed without a committed tombstone")
            return
        tomb = int(state["meta"]["destroyed"])
        for host in self.hosts:
            for active in host.active.values():
                db = active.db
                if db.path == path and db.claimed and db.token > tomb and not active.closing:
                    self.fail(f"{path.name}: removed while token {db.token} holds it")

    # -- clients ---------------------------------------------------------------------------

    def destroy_since(self, name: str, since: float) -> bool:
        """True when a destroy of ``name`` may have run after ``since``. An error does not
        prove a destroy did not run: the router reports its last attempt's error, and
        an earlier attempt may have run before its owner lapsed."""
        return any(
            op.method == "destroy"
            and op.name == name
            and (op.outcome == "pending" or op.done >= since)
            for op in self.ops
        )

    async def client(self, index: int) -> None:
        rng = random.Random(self.rng.random())
        for _ in range(self.ops_per_client):
            live = self.live_hosts()
            if not live:
                await asyncio.sleep(0.1)
                continue
            front = rng.choice(live)
            name = rng.choice(self.names)
            op_id = f"o{next(self._op_seq)}"
            method, args = self._pick(rng, op_id)
            op = Op(op_id, name, method, args, self.loop.time())  # type: ignore[union-attr]
            self.ops.append(op)
            try:
                result = await front.router.call(
                    self.object_id(name), method, args, {}, call_id=op_id
                )
            except DurableError as exc:
                op.outcome, op.error = "error", f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                op.outcome, op.error = "error", f"{type(exc).__name__}: {exc}"
                self.fail(f"{op_id} {method} raised a non-runtime error: {op.error}")
            else:
                op.outcome = "ok"
                self.check_acknowledged(op, result)
            op.done = self.loop.time()  # type: ignore[union-attr]
            self.note(f"{op_id} {name} {method} {op.outcome} {op.error[:60]}")
            await asyncio.sleep(rng.uniform(0, 0.05))

    def _pick(self, rng: random.Random, op_id: str) -> tuple[str, list]:
        roll = rng.random()
        if roll < 0.40:
            return "write", [op_id]
        if roll < 0.50:
            return "fail", [op_id]
        if roll < 0.60:
            return "slow", [op_id, rng.choice([0.01, 0.1, 2.0])]
        if roll < 0.72:
            return "gated", [op_id, rng.uniform(0, 0.3)]
        if roll < 0.85:
            return "relay", [op_id, rng.choice(self.names)]
        if roll < 0.92:
            return "arm", [op_id, rng.uniform(0, 0.5)]
        return "destroy", [op_id, rng.choice([0.0, 0.4, 1.2])]

    def check_acknowledged(self, op: Op, result: Any) -> None:
        """Output gate: an acknowledged write is in the file when its reply arrives."""
        if op.method not in ("write", "slow", "gated", "relay"):
            return
        if op.method in ("write", "slow", "gated") and result != 1:
            self.fail(f"{op.id} {op.method} answered {result}: applied more than once")
        if self.destroy_since(op.name, op.sent):
            return
        state = self.read_file(self.path(op.name))
        count = None if state is None else state["kv"].get(f"op:{op.id}")
        if count != 1:
            self.fail(f"{op.id} {op.method} on {op.name} acknowledged, file says {count}")

    # -- faults ----------------------------------------------------------------------------

    async def chaos(self, stop: asyncio.Event) -> None:
        rng = random.Random(self.rng.random())
        while not stop.is_set():
            await asyncio.sleep(rng.expovariate(3.0 * self.fault_rate) if self.fault_rate else 1.0)
            if stop.is_set() or not self.fault_rate:
                break
            roll = rng.random()
            live = self.live_hosts()
            if roll < 0.30 and len(live) > 1:
                host = rng.choice(live)
                if host.host_id not in self.cut:
                    self.cut_off(host, True)
                    asyncio.get_running_loop().call_later(
                        rng.uniform(0.5, 2.5), self.cut_off, host, False
                    )
            elif roll < 0.55:
                victims = [a for h in live for a in h.active.values() if not a.closing]
                if victims:
                    victim = rng.choice(victims)
                    self.note(f"evict {victim.key[:20]}")
                    victim.evict("simulation")
            elif roll < 0.70 and len(live) > 1:
                host = rng.choice(live)
                self.note(f"drain {host.host_id}")
                await host.stop()
                await self.start_host()
            else:
                self._flip_failpoint(rng)

    def cut_off(self, host: Any, cut: bool) -> None:
        if not host.running:
            return
        self.note(f"{'cut off' if cut else 'reconnect'} {host.host_id}")
        host.lease_store.cut_off = cut
        if cut:
            self.cut.add(host.host_id)
        else:
            self.cut.discard(host.host_id)

    FAULTS: dict[str, Callable[[], BaseException]] = {
        "storage.commit": lambda: sqlite3.OperationalError("database or disk is full"),
        "turns.before_commit": lambda: RuntimeError("the Django database went away"),
        "turns.after_commit": lambda: RuntimeError("the alarm index update failed"),
        "turns.record_call": lambda: StorageError("database or disk is full"),
        "host.release": lambda: ConnectionError("Redis went away"),
        "host.claim": lambda: StorageError("cannot open object storage"),
        "host.object_closed": lambda: ConnectionError("Redis went away"),
    }

    def _flip_failpoint(self, rng: random.Random) -> None:
        name = rng.choice([*self.FAULTS, "turns.gate_reacquire"])
        if name == "turns.gate_reacquire":
            failpoints.enable(name, delay=rng.uniform(0.1, 0.6), probability=0.5, rng=rng)
        else:
            failpoints.enable(name, error=self.FAULTS[name], probability=0.3, rng=rng)
        self.note(f"failpoint {name}")
        asyncio.get_running_loop().call_later(rng.uniform(0.1, 0.8), failpoints.disable, name)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        for _ in range(self.host_count):
            await self.start_host()
        stop = asyncio.Event()
        chaos = asyncio.create_task(self.chaos(stop))
        await asyncio.gather(*(self.client(i) for i in range(self.clients)))
        stop.set()
        await chaos
        failpoints.reset()
        for host in self.live_hosts():
            self.cut_off(host, False)
        # Leases settle and every alarm comes due, retries (from 2 s, doubling) included.
        await asyncio.sleep(40.0)
        self.final_checks()
        for host in list(self.live_hosts()):
            await host.stop()
        await asyncio.sleep(SETTINGS["LEASE_TTL"])
        self.leak_checks()

    def final_checks(self) -> None:
        files = {name: self.read_file(self.path(name)) for name in self.names}
        for name, state in files.items():
            for key, count in (state or {"kv": {}})["kv"].items():
                if key.startswith("op:") and count != 1:
                    self.fail(f"{name}: {key} applied {count} times")
        for op in self.ops:
            if op.outcome != "ok" or op.method not in ("write", "slow", "gated", "relay", "arm"):
                continue
            if self.destroy_since(op.name, op.sent):
                continue
            state = files[op.name]
            recorded = None if state is None else state["kv"].get(f"op:{op.id}")
            if op.method != "arm" and recorded != 1:
                self.fail(f"acknowledged {op.id} {op.method} on {op.name} is lost")
            if op.method == "arm" and self._last_arm(op):
                state = files[op.name]
                fired = None if state is None else state["kv"].get(f"op:{op.id}/alarm")
                if fired != 1:
                    self.fail(f"alarm armed by {op.id} on {op.name} ran {fired or 0} times")
            if op.method == "relay":
                other = op.args[1]
                if self.destroy_since(other, op.sent):
                    continue
                state = files[other]
                if state is None or state["kv"].get(f"op:{op.id}/r") != 1:
                    self.fail(f"acknowledged relay {op.id} lost its call on {other}")

    def _last_arm(self, arm: Op) -> bool:
        """True when no other alarm may have been set on the object after ``arm`` ran
        (one sent earlier may still have been applied later)."""
        return not any(
            op.method == "arm"
            and op.name == arm.name
            and op is not arm
            and (op.outcome == "pending" or op.done >= arm.sent)
            for op in self.ops
        )

    def leak_checks(self) -> None:
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if left:
            self.fail(f"tasks left after every host stopped: {[t.get_name() for t in left][:5]}")
        now = clock.monotonic()
        held = [k for k, (_h, _t, until) in self.shared_leases._leases.items() if until > now]
        if held:
            self.fail(f"leases left after every host stopped: {held[:3]}")

    def digest(self) -> str:
        """A fingerprint of what happened: equal for two runs of the same seed."""
        return hashlib.sha256("\n".join(self.trace).encode()).hexdigest()[:16]


@dataclasses.dataclass
class Report:
    seed: int
    ok: bool
    failures: list[str]
    ops: int
    acknowledged: int
    virtual_seconds: float
    real_seconds: float
    worst_stall: float
    digest: str
    trace: list[str]


@contextlib.contextmanager
def _patched(sim: Simulation) -> Iterator[None]:
    """Watch every commit and every file removal of the run."""
    original_commit = database.ObjectDatabase.commit

    def commit(db: Any) -> None:
        pending = db.in_write_tx
        original_commit(db)
        if pending:
            sim.observe_commit(db.path, db.token)

    def remove(path: Path) -> None:
        sim.observe_removal(path)
        remove_object_files(path)

    database.ObjectDatabase.commit = commit  # type: ignore[method-assign]
    turns_module.remove_object_files = remove  # type: ignore[attr-defined]
    host_module.remove_object_files = remove  # type: ignore[attr-defined]
    try:
        yield
    finally:
        database.ObjectDatabase.commit = original_commit  # type: ignore[method-assign]
        turns_module.remove_object_files = remove_object_files  # type: ignore[attr-defined]
        host_module.remove_object_files = remove_object_files  # type: ignore[attr-defined]


def varied_shape(seed: int) -> dict[str, Any]:
    """A cluster shape drawn from the seed (``simulate --vary``): 2-4 hosts, 2-8 objects
    (fewer objects, more contention), 2-6 clients, 15-40 operations each."""
    rng = random.Random(f"shape-{seed}")
    return {
        "hosts": rng.randint(2, 4),
        "objects": rng.randint(2, 8),
        "clients": rng.randint(2, 6),
        "ops_per_client": rng.randint(15, 40),
    }


def run_seed(seed: int, *, stall_limit: float = 2.0, **options: Any) -> Report:
    """Run one seeded scenario in a fresh virtual-time loop; never raises for a broken
    guarantee (the report says), only for a bug in the simulation itself."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"sim-{seed}-") as tmp:
        root = Path(tmp)
        configured = dict(getattr(settings, "DURABLE_OBJECTS", {}) or {})
        configured.update(SETTINGS, STORAGE_DIR=str(root / "objects"), REDIS_URL=None)
        configured["ID_KEY"] = "00" * 32
        sim = Simulation(seed, root, **options)
        loop = VirtualLoop(stall_limit=stall_limit, spin_limit=200_000)
        sim.loop = loop
        clock.use(loop.time, lambda: EPOCH + loop.time())
        failpoints.reset()
        logging.disable(logging.CRITICAL)  # a run logs thousands of expected failures
        try:
            with override_settings(DURABLE_OBJECTS=configured), _patched(sim):
                reset_id_key_cache()
                main = loop.create_task(sim.run(), name="simulation")
                loop.call_at(600.0, main.cancel)
                try:
                    loop.run_until_complete(main)
                except SimulationFailure as exc:
                    sim.fail(str(exc))
                except asyncio.CancelledError:
                    sim.fail("the run did not finish within 600 virtual seconds")
                if loop.failure is not None:
                    sim.fail(str(loop.failure))
                _cancel_all(loop)
        finally:
            logging.disable(logging.NOTSET)
            clock.reset()
            failpoints.reset()
            reset_id_key_cache()
            loop.close()
        acknowledged = sum(op.outcome == "ok" for op in sim.ops)
        return Report(
            seed=seed,
            ok=not sim.failures,
            failures=sim.failures,
            ops=len(sim.ops),
            acknowledged=acknowledged,
            virtual_seconds=loop.time(),
            real_seconds=time.perf_counter() - started,
            worst_stall=loop.worst_stall,
            digest=sim.digest(),
            trace=sim.trace,
        )


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
