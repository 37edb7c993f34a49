"""The chaos driver: Redis + 3 hosts, client workloads, seeded faults, checkers, summary.

Three ``manage.py runserver`` hosts share one VAR_DIR and one private Redis (as
``tests/cluster`` does) with a short lease TTL and a short turn time limit. Asyncio HTTP
clients run CAS-register, ledger-counter and scratch-ledger workloads against them, each
operation recorded in a ``History``; a fault loop injects, in a seeded random order,
``kill -9`` of a host (restarted after), ``kill -STOP``/``-CONT`` past the lease TTL, a
Redis restart with empty data, the kill of a front holding WebSockets attached to an
object owned by another host, SIGTERM of a loaded host (a bounded graceful drain), the
destroy of a busy scratch object whose owner is frozen, writes cut by the turn time
limit, and a full disk on one host. Then the history checkers (linearizability per
register, exactness per ledger, no double apply nor loss per scratch ledger), the
single-owner audit and the WebSocket checks give their verdicts, and a summary is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from durable_core.testing.redis_server import RedisServer
from tests._servers import ServerProcess, migrate

from . import _http
from .audit import check_audit, load
from .checker import Verdict, check_ledger, check_register, check_scratch
from .history import History, Op

SETTINGS = "tests.chaos.settings"
KINDS = (
    "kill9",
    "pause",
    "redis_restart",
    "front_kill",
    "sigterm",
    "destroy_busy",
    "turn_timeout",
    "disk_full",
)
ROOM = "process_app.Room"
SCRATCH = "chaos.Scratch"
REGISTER = "chaos.Register"
LEDGER = "chaos.Ledger"


@dataclass
class Config:
    """One run's knobs; ``seconds`` is the length of the faulty period."""

    seconds: float = 180.0
    seed: int = 1
    workdir: Path | None = None
    hosts: int = 3
    lease_ttl: float = 2.0
    registers: int = 4  # register slots, each with ``register_clients`` clients
    register_clients: int = 3
    ledgers: int = 2
    ledger_clients: int = 2
    scratches: int = 2  # scratch ledgers, destroyed by the destroy_busy fault
    scratch_clients: int = 2
    turn_timeout: float = 1.0  # DURABLE_TURN_TIMEOUT of the hosts
    sigterm_burst: int = 24  # calls sent at a host just before its SIGTERM
    epoch: float = 15.0  # register keys change every epoch (short histories to check)
    fault_gap: tuple[float, float] = (1.5, 4.0)
    op_deadline: float = 12.0  # an operation unanswered this long is indeterminate
    attempt_timeout: float = 4.0
    # A destroy's attempt outlasts the front's own CALL_TIMEOUT (6 s): its call id is
    # deleted with the object, so an attempt still running on a front when the client
    # sent the next could destroy the new incarnation again.
    destroy_attempt_timeout: float = 8.0
    destroy_deadline: float = 24.0
    impatient_timeout: float | None = None  # if set, odd-numbered clients use this one
    think: tuple[float, float] = (0.01, 0.06)
    sockets_per_front: int = 4
    kinds: tuple[str, ...] = KINDS
    settings: str = SETTINGS  # tests.chaos.settings_unfenced: a deliberately broken server


@dataclass
class Fault:
    """One injected fault."""

    kind: str
    start: float
    end: float = 0.0
    target: int | None = None
    names: list[str] = field(default_factory=list)  # names owned by the target then
    detail: dict[str, Any] = field(default_factory=dict)
    names_ready: asyncio.Event = field(default_factory=asyncio.Event)


class ChaosRun:
    """Everything of one run; ``main`` runs it and returns the summary."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.work = config.workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{config.seed}-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.var = self.work / "var"
        self.rng = random.Random(config.seed)
        self.run_id = secrets.token_hex(3)
        self.history = History()
        self.faults: list[Fault] = []
        self.servers: list[ServerProcess] = []
        self.redis_server: RedisServer | None = None
        self.redis: redis.Redis | None = None
        self.stopping = False
        self.t0 = 0.0
        self.keys: dict[tuple[str, str], str] = {}  # (namespace, name) -> object key
        self.names_in_use: dict[str, str] = {}  # name -> namespace, recently used
        self.ws_checks: list[dict] = []
        self.lease_anomalies: list[dict] = []  # fresh leases found gone at once
        self.background: list[asyncio.Task] = []  # calls a fault sent, awaited at the end
        self.wiped = {"gone": 0, "kept": 0}  # adds acknowledged before a scratch's last destroy
        self.load_before = os.getloadavg()

    # -- cluster ----------------------------------------------------------------------

    def start_cluster(self) -> None:
        self.redis_server = RedisServer(self.work / "redis").start()
        self.redis = redis.Redis.from_url(self.redis_server.url, socket_timeout=5)
        migrate(self.var, self.config.settings)
        (self.var / "id_key").write_text(secrets.token_hex(32) + "\n")
        env = {
            "DURABLE_REDIS_URL": self.redis_server.url,
            "DURABLE_LEASE_TTL": str(self.config.lease_ttl),
            "DURABLE_CALL_TIMEOUT": "6",
            "DURABLE_TURN_TIMEOUT": str(self.config.turn_timeout),
            "DURABLE_LOG": "INFO",
        }
        for i in range(self.config.hosts):
            extra = dict(env, DURABLE_AUDIT_LOG=str(self.work / f"audit-host{i}.jsonl"))
            server = ServerProcess(
                self.var, self.work / f"host{i}.log", settings=self.config.settings, env=extra
            )
            self.servers.append(server.start())
        for server in self.servers:
            server.wait_ready(60)

    def stop_cluster(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.resume()
            server.cleanup()
        if self.redis is not None:
            self.redis.close()
        if self.redis_server is not None:
            self.redis_server.stop()

    async def host_id(self, server: ServerProcess) -> str | None:
        with contextlib.suppress(OSError, TimeoutError, ValueError):
            status, body = await _http.request("GET", server.url + "/healthz", timeout=3)
            if status == 200:
                return body["host"]
        return None

    async def object_key(self, namespace: str, name: str) -> str | None:
        if (namespace, name) not in self.keys:
            for server in self.servers:
                with contextlib.suppress(OSError, TimeoutError, ValueError):
                    url = f"{server.url}/c/key/{namespace}/{name}"
                    status, body = await _http.request("GET", url, timeout=3)
                    if status == 200:
                        self.keys[(namespace, name)] = body["key"]
                        break
        return self.keys.get((namespace, name))

    def lease_of(self, key: str) -> tuple[str, int] | None:
        assert self.redis is not None
        try:
            value = self.redis.get(f"durable:lease:{{{key}}}")
        except redis.RedisError:
            return None
        if value is None:
            return None
        host, _, token = value.decode().rpartition("|")
        return host, int(token)

    async def names_owned_by(self, server: ServerProcess) -> list[str]:
        """Names in use whose lease the server's host holds right now."""
        host = await self.host_id(server)
        owned = []
        for name, namespace in list(self.names_in_use.items()):
            key = await self.object_key(namespace, name)
            lease = self.lease_of(key) if key else None
            if lease is not None and lease[0] == host:
                owned.append(name)
        return owned

    # -- clients ------------------------------------------------------------------------

    async def perform(
        self,
        op: Op,
        path: str,
        body: dict,
        rng: random.Random,
        patient: bool = True,
        *,
        first: ServerProcess | None = None,
        servers: list[ServerProcess] | None = None,
        attempt_timeout: float | None = None,
        op_deadline: float | None = None,
    ) -> tuple[str, Any]:
        """Send one operation, retrying on any host (of ``servers``; ``first`` first)
        with the same call id until answered or the deadline passes: ("ok", result),
        ("fail", "TurnTimeout") when the turn was cut and rolled back, or ("info", None)."""
        deadline = time.monotonic() + (op_deadline or self.config.op_deadline)
        headers = {"Idempotency-Key": f"{self.run_id}-{op.id}"}
        while time.monotonic() < deadline:
            server = first if first is not None and op.attempts == 0 else None
            server = server or rng.choice(servers or self.servers)
            op.attempts += 1
            attempt = attempt_timeout or self.config.attempt_timeout
            if not patient and self.config.impatient_timeout is not None:
                attempt = self.config.impatient_timeout
            timeout = min(attempt, max(0.1, deadline - time.monotonic()))
            try:
                status, answer = await _http.request(
                    "POST", server.url + path, body, headers, timeout=timeout
                )
            except (OSError, TimeoutError, ValueError) as exc:
                op.notes.append(type(exc).__name__)
                await asyncio.sleep(0.05)
                continue
            if status == 200:
                return "ok", answer["result"]
            if status == 409 and isinstance(answer, dict) and answer["error"] == "TurnTimeout":
                return "fail", "TurnTimeout"  # rolled back (DESIGN §6): it did not happen
            if status >= 500:
                error = answer.get("error") if isinstance(answer, dict) else answer
                op.notes.append(f"{status}:{error}")
                await asyncio.sleep(0.1)
                continue
            raise AssertionError(f"unexpected answer {status} {answer!r} to {path} {body}")
        return "info", None

    async def register_client(self, slot: int, client: int) -> None:
        rng = random.Random(f"{self.config.seed}-r{slot}-{client}")
        known: dict[str, Any] = {}
        while not self.stopping:
            epoch = int((time.monotonic() - self.t0) / self.config.epoch)
            name = f"s{slot}e{epoch}-{self.run_id}"
            self.names_in_use[name] = REGISTER
            dice = rng.random()
            process = f"r{slot}.{client}"
            if dice < 0.4:
                op = self.history.invoke(process, name, "read", None)
                body: dict = {"f": "read"}
            elif dice < 0.7:
                op = self.history.invoke(process, name, "write", None)
                op.args = op.id + 1  # unique per run, so a read names its write
                body = {"f": "write", "value": op.args}
            else:
                op = self.history.invoke(process, name, "cas", None)
                op.args = [known.get(name), op.id + 1]
                body = {"f": "cas", "old": op.args[0], "new": op.args[1]}
            kind, result = await self.perform(
                op, f"/c/register/{name}", body, rng, patient=client % 2 == 0
            )
            if op.f == "read" and kind != "ok":
                kind = "fail"  # a read has no effect: an unanswered one is dropped
            self.history.complete(op, kind, result)
            if kind == "ok":
                if op.f == "read":
                    known[name] = result
                elif op.f == "write":
                    known[name] = op.args
                else:
                    known[name] = op.args[1] if result["ok"] else result["value"]
            await asyncio.sleep(rng.uniform(*self.config.think))

    async def ledger_client(self, index: int, client: int) -> None:
        rng = random.Random(f"{self.config.seed}-l{index}-{client}")
        name = f"ledger{index}-{self.run_id}"
        self.names_in_use[name] = LEDGER
        while not self.stopping:
            op = self.history.invoke(f"l{index}.{client}", name, "add", None)
            op.args = f"{self.run_id}-{op.id}"
            kind, result = await self.perform(
                op, f"/c/ledger/{name}", {"op": op.args}, rng, patient=client % 2 == 0
            )
            self.history.complete(op, kind, result)
            await asyncio.sleep(rng.uniform(*self.config.think))

    async def scratch_client(self, index: int, client: int) -> None:
        rng = random.Random(f"{self.config.seed}-x{index}-{client}")
        name = self.scratch_name(index)
        self.names_in_use[name] = SCRATCH
        while not self.stopping:
            op, path, body = self.add_op(name, f"x{index}.{client}")
            kind, result = await self.perform(op, path, body, rng, patient=client % 2 == 0)
            self.history.complete(op, kind, result)
            await asyncio.sleep(rng.uniform(*self.config.think))

    def scratch_name(self, index: int) -> str:
        # Not "s…" (the registers' prefix) nor "ledger…".
        return f"doomed{index}-{self.run_id}"

    def add_op(self, name: str, process: str, slow: float = 0.0) -> tuple[Op, str, dict]:
        """A new write on ``name`` (a register write, taking ``slow`` seconds inside its
        turn if set; a ledger or scratch add), recorded as invoked: the operation, its
        path and its body."""
        namespace = self.names_in_use[name]
        if namespace == REGISTER:
            op = self.history.invoke(process, name, "write", None)
            op.args = op.id + 1
            body: dict = {"f": "write", "value": op.args}
            if slow:
                body = {"f": "slow_write", "value": op.args, "seconds": slow}
            return op, f"/c/register/{name}", body
        op = self.history.invoke(process, name, "add", None)
        op.args = f"{self.run_id}-{op.id}"
        if namespace == LEDGER:
            return op, f"/c/ledger/{name}", {"op": op.args}
        return op, f"/c/scratch/{name}", {"f": "add", "op": op.args}

    # -- faults -------------------------------------------------------------------------

    async def fault_loop(self, until: float) -> None:
        order: list[str] = []
        while True:
            await asyncio.sleep(self.rng.uniform(*self.config.fault_gap))
            if time.monotonic() >= until:
                return
            if not order:
                order = list(self.config.kinds)
                self.rng.shuffle(order)
            kind = order.pop()
            fault = Fault(kind, time.monotonic())
            self.faults.append(fault)
            print(f"[{time.monotonic() - self.t0:6.1f}s] fault {kind}", flush=True)
            probe = asyncio.create_task(self.probe_failover(fault))
            try:
                await getattr(self, f"fault_{kind}")(fault)
            finally:
                fault.end = time.monotonic()
                fault.names_ready.set()
                await probe

    async def probe_failover(self, fault: Fault) -> None:
        """Once the fault is injected: per object the target owned, the time until a read
        through another host succeeds (the failover as a client that knows no better than
        to try the survivors sees it; at most 30 s)."""
        await fault.names_ready.wait()
        if fault.kind == "front_kill" or not fault.names:
            return
        others = [s for i, s in enumerate(self.servers) if i != fault.target]
        rng = random.Random(f"{self.config.seed}-probe-{len(self.faults)}")

        async def probe(name: str) -> float | None:
            namespace = self.names_in_use[name]
            if namespace == REGISTER:
                method, path, body = "POST", f"/c/register/{name}", {"f": "read"}
            elif namespace == LEDGER:
                method, path, body = "GET", f"/c/ledger/{name}?count=1", None
            else:
                method, path, body = "GET", f"/c/scratch/{name}?count=1", None
            while time.monotonic() < fault.start + 30:
                server = rng.choice(others)
                with contextlib.suppress(OSError, TimeoutError, ValueError):
                    status, _ = await _http.request(method, server.url + path, body, timeout=1.0)
                    if status == 200:
                        return time.monotonic() - fault.start
                await asyncio.sleep(0.05)
            return None

        took = await asyncio.gather(*(probe(name) for name in fault.names))
        fault.detail["failover_s"] = None if None in took else round(max(took), 3)
        if None in took:
            fault.detail["not_recovered_within_30s"] = [
                n for n, t in zip(fault.names, took, strict=True) if t is None
            ]

    async def fault_kill9(self, fault: Fault) -> None:
        fault.target = self.rng.randrange(len(self.servers))
        server = self.servers[fault.target]
        fault.names = await self.names_owned_by(server)
        fault.start = time.monotonic()
        fault.names_ready.set()
        await asyncio.to_thread(server.kill9)
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await self.restart(server)

    async def restart(self, server: ServerProcess) -> None:
        server.start()
        await asyncio.to_thread(server.wait_ready, 60)

    async def fault_pause(self, fault: Fault) -> None:
        fault.target = self.rng.randrange(len(self.servers))
        server = self.servers[fault.target]
        fault.names = await self.names_owned_by(server)
        paused = self.config.lease_ttl * self.rng.uniform(1.5, 2.5)
        fault.detail["paused_s"] = round(paused, 2)
        fault.start = time.monotonic()
        fault.names_ready.set()
        server.pause()
        try:
            await asyncio.sleep(paused)
        finally:
            server.resume()

    async def fault_redis_restart(self, fault: Fault) -> None:
        fault.names = list(self.names_in_use)
        fault.start = time.monotonic()
        fault.names_ready.set()
        assert self.redis_server is not None
        await asyncio.to_thread(self.redis_server.restart_empty)

    async def fault_front_kill(self, fault: Fault) -> None:
        """Sockets on two fronts attached to a room owned by a third host; kill -9 of one
        front: the owner must count that front's sockets closed (1006) within a bound,
        and the other front's sockets must keep receiving broadcasts, in order."""
        fault.names_ready.set()  # no failover to measure: the owner stays up
        owner_i, front_i, other_i = self.rng.sample(range(len(self.servers)), 3)
        fault.target = front_i
        owner, front, other = (self.servers[i] for i in (owner_i, front_i, other_i))
        check: dict[str, Any] = {"ok": False}
        self.ws_checks.append(check)
        clients: list[_Socket] = []
        try:
            # First access makes the owner claim a fresh room. A room whose lease is not
            # the owner's a moment later is noted (lease anomaly) and another one tried.
            owner_id = await self.host_id(owner)
            for attempt in range(3):
                room = f"room{len(self.faults)}.{attempt}-{self.run_id}"
                check["room"] = fault.detail["room"] = room
                await self._room_info(owner, room, timeout=10)
                key = await self.object_key(ROOM, room)
                lease = self.lease_of(key) if key else None
                if lease is not None and lease[0] == owner_id:
                    break
                self.lease_anomalies.append(
                    {
                        "room": room,
                        "owner": owner_id,
                        "lease_seen": lease,
                        "at_s": round(time.monotonic() - self.t0, 2),
                    }
                )
            else:
                check["problem"] = "the owner did not keep a fresh room's lease 3 times"
                return
            n = self.config.sockets_per_front
            for server, tag in ((front, "f"), (other, "o")):
                for j in range(n):
                    clients.append(await _Socket.open(server, room, f"{tag}{j}"))
            killed_names = {c.name for c in clients if c.name.startswith("f")}
            kept = [c for c in clients if c.name.startswith("o")]
            await self._wait(lambda: self._sockets_are(owner, room, 2 * n), 15, check, "attach")
            fault.start = time.monotonic()
            await asyncio.to_thread(front.kill9)
            seen = await self._wait(
                lambda: self._closed_names(owner, room, killed_names, n), 20, check, "closes"
            )
            if not seen:
                return
            check["closed_after_s"] = round(time.monotonic() - fault.start, 2)
            status, body = await _http.request(
                "POST", f"{other.url}/t/room/{room}/broadcast", {"text": "after"}, timeout=10
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not all(c.seqs for c in kept):
                await asyncio.sleep(0.1)
            seqs = [c.seqs for c in kept]
            in_order = all(s == sorted(set(s)) for s in seqs)
            check["ok"] = status == 200 and all(s == [body["seq"]] for s in seqs) and in_order
            check["kept_seqs"] = seqs
        except (OSError, TimeoutError, ValueError) as exc:
            check["problem"] = f"{type(exc).__name__}: {exc}"
        finally:
            for client in clients:
                await client.close()
            if front.proc is not None and front.proc.poll() is not None:
                await self.restart(front)

    async def _room_info(self, server: ServerProcess, room: str, timeout: float = 5) -> dict:
        status, body = await _http.request(
            "GET", f"{server.url}/t/room/{room}/info", timeout=timeout
        )
        if status != 200:
            raise ValueError(f"room info: {status} {body}")
        return body

    async def _sockets_are(self, server: ServerProcess, room: str, count: int) -> bool:
        return (await self._room_info(server, room))["sockets"] == count

    async def _closed_names(
        self, server: ServerProcess, room: str, names: set[str], remaining: int
    ) -> bool:
        info = await self._room_info(server, room)
        closed = {name for name, code, clean in info["closed"] if code == 1006 and not clean}
        return names <= closed and info["sockets"] == remaining

    async def _wait(self, probe, timeout: float, check: dict, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                if await probe():
                    return True
            await asyncio.sleep(0.2)
        check["problem"] = f"timed out waiting for {what}"
        return False

    async def fault_sigterm(self, fault: Fault) -> None:
        """SIGTERM of a host just after a burst of calls was sent at it and at what it
        owns (so calls are queued there; register writes among them take half the turn
        time limit each, so that a register's queue can outlast the drain): it
        must drain, fail the rest retryably and exit within lease TTL + 2 s; it is
        restarted once it exited."""
        fault.target = self.rng.randrange(len(self.servers))
        server = self.servers[fault.target]
        fault.names = await self.names_owned_by(server)
        rng = random.Random(f"{self.config.seed}-burst-{len(self.faults)}")
        pool = fault.names or list(self.names_in_use)
        adds = [n for n in pool if self.names_in_use[n] != REGISTER]
        adds = adds or [n for n, ns in self.names_in_use.items() if ns != REGISTER]
        writes: dict[str, int] = {}
        for _ in range(self.config.sigterm_burst):
            name = rng.choice(pool)
            if self.names_in_use[name] == REGISTER:
                # At most 4 concurrent burst writes per register: more overlapping writes
                # make its history too costly to check (2 keys came out "unknown" after
                # 24 burst writes on one register in the first 10-minute run).
                writes[name] = writes.get(name, 0) + 1
                if writes[name] > 4 and adds:
                    name = rng.choice(adds)
            self.background.append(asyncio.create_task(self.burst_call(server, name, rng)))
        await asyncio.sleep(0.3)
        fault.start = time.monotonic()
        fault.names_ready.set()
        proc = server.proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 30)
            fault.detail["exit_s"] = round(time.monotonic() - fault.start, 3)
        except subprocess.TimeoutExpired:
            fault.detail["exit_s"] = None  # a violation; kill it to go on
            await asyncio.to_thread(server.kill9)
        fault.detail["exit_code"] = proc.returncode
        await self.restart(server)

    async def burst_call(self, server: ServerProcess, name: str, rng: random.Random):
        op, path, body = self.add_op(name, "burst", slow=self.config.turn_timeout / 2)
        kind, result = await self.perform(op, path, body, rng, first=server)
        self.history.complete(op, kind, result)

    async def fault_destroy_busy(self, fault: Fault) -> None:
        """Freeze the owner of a busy scratch object (its lease in Redis names it), send
        a destroy of it through another host, retried with one call id until answered,
        and resume the owner after 1.5-2.5 lease TTLs."""
        name = self.scratch_name(self.rng.randrange(self.config.scratches))
        fault.detail["object"] = name
        key = await self.object_key(SCRATCH, name)
        lease = self.lease_of(key) if key else None
        ids = [await self.host_id(server) for server in self.servers]
        if lease is not None and lease[0] in ids:
            fault.target = ids.index(lease[0])
        paused = self.config.lease_ttl * self.rng.uniform(1.5, 2.5)
        others = [s for i, s in enumerate(self.servers) if i != fault.target]
        owner = self.servers[fault.target] if fault.target is not None else None
        if owner is not None:
            fault.names = await self.names_owned_by(owner)
            fault.detail["paused_s"] = round(paused, 2)
        else:
            fault.detail["owner_not_found"] = True  # not active, or the lease is gone
        fault.start = time.monotonic()
        fault.names_ready.set()
        if owner is not None:
            owner.pause()
        destroy = asyncio.create_task(self.destroy_scratch(name, others, fault))
        try:
            if owner is not None:
                await asyncio.sleep(paused)
        finally:
            if owner is not None:
                owner.resume()
        await destroy

    async def destroy_scratch(self, name: str, servers: list[ServerProcess], fault: Fault):
        op = self.history.invoke("destroy", name, "destroy", None)
        rng = random.Random(f"{self.config.seed}-destroy-{len(self.faults)}")
        kind, result = await self.perform(
            op,
            f"/c/scratch/{name}",
            {"f": "destroy"},
            rng,
            servers=servers,
            attempt_timeout=self.config.destroy_attempt_timeout,
            op_deadline=self.config.destroy_deadline,
        )
        self.history.complete(op, kind, result)
        fault.detail["destroy"] = kind
        fault.detail["destroy_attempts"] = op.attempts
        if kind == "ok":
            fault.detail["destroyed_after_s"] = round(op.ret - fault.start, 3)

    async def fault_turn_timeout(self, fault: Fault) -> None:
        """For a few seconds, two clients write to current registers through a method
        that sleeps past the turn time limit before writing: each must be answered
        TurnTimeout (409), recorded as a failed write, which the linearizability
        checker then proves had no effect; one answered ok is a violation."""
        fault.names_ready.set()  # every host stays up: no failover to measure
        during = self.rng.uniform(2.0, 4.0)
        until = time.monotonic() + during
        outcomes = {"ok": 0, "fail": 0, "info": 0}

        async def slow_client(j: int) -> None:
            rng = random.Random(f"{self.config.seed}-slow-{len(self.faults)}-{j}")
            while time.monotonic() < until and not self.stopping:
                epoch = int((time.monotonic() - self.t0) / self.config.epoch)
                name = f"s{rng.randrange(self.config.registers)}e{epoch}-{self.run_id}"
                self.names_in_use[name] = REGISTER
                op = self.history.invoke(f"slow{j}", name, "write", None)
                op.args = op.id + 1
                seconds = self.config.turn_timeout * 1.5
                body = {"f": "slow_write", "value": op.args, "seconds": seconds}
                kind, result = await self.perform(op, f"/c/register/{name}", body, rng)
                self.history.complete(op, kind, result)
                outcomes[kind] += 1

        await asyncio.gather(slow_client(0), slow_client(1))
        fault.detail["slow_writes"] = outcomes

    async def fault_disk_full(self, fault: Fault) -> None:
        """One host's commits fail with SQLite's "database or disk is full" (the
        ``storage.commit`` failpoint, with probability 0.5 or 1) for about 3 s."""
        fault.names_ready.set()  # the host stays up and keeps its leases
        fault.target = self.rng.randrange(len(self.servers))
        server = self.servers[fault.target]
        seconds = self.rng.uniform(2.5, 3.5)
        probability = self.rng.choice((0.5, 1.0))
        fault.detail.update(seconds=round(seconds, 2), probability=probability)
        body = {"name": "storage.commit", "seconds": seconds, "probability": probability}
        try:
            status, answer = await _http.request(
                "POST", server.url + "/c/failpoint", body, timeout=5
            )
        except (OSError, TimeoutError, ValueError) as exc:
            fault.detail["problem"] = f"{type(exc).__name__}: {exc}"
            return
        if status != 200:
            fault.detail["problem"] = f"{status} {answer}"
            return
        await asyncio.sleep(seconds + 0.5)
        hits = re.findall(r"chaos failpoint storage\.commit off after (\d+) hits", server.text())
        fault.detail["commits_failed"] = int(hits[-1]) if hits else None

    # -- the run --------------------------------------------------------------------------

    async def run_async(self) -> dict:
        self.t0 = time.monotonic()
        config = self.config
        clients = [
            asyncio.create_task(self.register_client(slot, c))
            for slot in range(config.registers)
            for c in range(config.register_clients)
        ]
        clients += [
            asyncio.create_task(self.ledger_client(i, c))
            for i in range(config.ledgers)
            for c in range(config.ledger_clients)
        ]
        clients += [
            asyncio.create_task(self.scratch_client(i, c))
            for i in range(config.scratches)
            for c in range(config.scratch_clients)
        ]
        await self.fault_loop(until=self.t0 + config.seconds)
        calm = time.monotonic()
        await asyncio.sleep(2.0)  # a little traffic on the healed cluster
        self.stopping = True
        await asyncio.wait_for(asyncio.gather(*clients, *self.background), config.op_deadline + 30)
        self.elapsed = time.monotonic() - self.t0
        self.calm_after = calm - self.t0
        return await self.check()

    async def final_ledger(self, name: str, route: str = "ledger") -> dict | None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for server in self.servers:
                with contextlib.suppress(OSError, TimeoutError, ValueError):
                    status, body = await _http.request(
                        "GET", f"{server.url}/c/{route}/{name}", timeout=5
                    )
                    if status == 200:
                        return body["result"]
            await asyncio.sleep(0.5)
        return None

    async def check(self) -> dict:
        register_verdicts = [
            check_register(key, ops) for key, ops in self.history.by_key("s").items()
        ]
        ledger_verdicts = []
        for key, ops in self.history.by_key("ledger").items():
            final = await self.final_ledger(key)
            if final is None:
                ledger_verdicts.append(Verdict(key, False, len(ops), problems=["unreadable"]))
            else:
                ledger_verdicts.append(check_ledger(key, ops, final["ops"], final["n"]))
        scratch_verdicts = []
        for key, ops in self.history.by_key("doomed").items():
            final = await self.final_ledger(key, "scratch")
            if final is None:
                scratch_verdicts.append(Verdict(key, False, len(ops), problems=["unreadable"]))
            else:
                scratch_verdicts.append(check_scratch(key, ops, final["ops"], final["n"]))
                self.note_wiped(ops, set(final["ops"]))
        audit = check_audit(load(sorted(self.work.glob("audit-host*.jsonl"))))
        logs = "\n".join(server.text() for server in self.servers)
        return self.summarize(register_verdicts, ledger_verdicts, scratch_verdicts, audit, logs)

    def note_wiped(self, ops: list[Op], final: set[str]) -> None:
        """Did the last destroy of a scratch object take effect? Of the adds acknowledged
        before it was sent, count those gone and those still there (not a violation by
        itself: an abandoned attempt of an add may still run after the destroy)."""
        destroys = [o for o in ops if o.f == "destroy" and o.ok]
        if destroys:
            sent = max(o.call for o in destroys)
            before = [o.args for o in ops if o.f == "add" and o.ok and o.ret < sent]
            kept = sum(1 for op_id in before if op_id in final)
            self.wiped["gone"] += len(before) - kept
            self.wiped["kept"] += kept

    def failover_durations(self) -> tuple[list[float], int]:
        """Measured failovers (seconds) and how many did not recover within 30 s."""
        durations = [f.detail["failover_s"] for f in self.faults if f.detail.get("failover_s")]
        stuck = sum(1 for f in self.faults if f.detail.get("not_recovered_within_30s"))
        return durations, stuck

    def per_kind(self) -> dict[str, dict]:
        """Per fault kind: how many, the failovers measured, and what its checks saw."""
        rows: dict[str, dict] = {}
        for kind in self.config.kinds:
            faults = [f for f in self.faults if f.kind == kind]
            took = [f.detail["failover_s"] for f in faults if f.detail.get("failover_s")]
            row: dict[str, Any] = {"count": len(faults), "failovers_measured": len(took)}
            if took:
                row["failover_p50_s"] = round(statistics.median(took), 3)
                row["failover_max_s"] = round(max(took), 3)
            if kind == "sigterm":
                exits = [f.detail.get("exit_s") for f in faults]
                bound = self.config.lease_ttl + 2.0
                row["exit_s"] = exits
                row["exit_bound_s"] = bound
                row["exit_max_s"] = max((e for e in exits if e is not None), default=None)
                row["exits_over_bound"] = sum(1 for e in exits if e is None or e > bound)
            elif kind == "destroy_busy":
                row["destroys"] = _count(f.detail.get("destroy") for f in faults)
                row["owner_frozen"] = sum(1 for f in faults if f.target is not None)
            elif kind == "turn_timeout":
                slow = [f.detail.get("slow_writes", {}) for f in faults]
                row["slow_writes"] = {
                    k: sum(s.get(k, 0) for s in slow) for k in ("ok", "fail", "info")
                }
            elif kind == "disk_full":
                row["commits_failed"] = sum(f.detail.get("commits_failed") or 0 for f in faults)
                row["not_injected"] = sum(1 for f in faults if "problem" in f.detail)
            rows[kind] = row
        return rows

    def summarize(self, registers, ledgers, scratches, audit, logs: str) -> dict:
        ops = self.history.ops
        by_f: dict[str, dict[str, int]] = {}
        for op in ops:
            row = by_f.setdefault(op.f, {})
            row[op.type] = row.get(op.type, 0) + 1
        durations, stuck = self.failover_durations()
        kinds: dict[str, int] = {}
        for fault in self.faults:
            kinds[fault.kind] = kinds.get(fault.kind, 0) + 1
        unknown = [v for v in registers if v.valid is None]
        failed = [v for v in registers if v.valid is False]
        ledger_failed = [v for v in ledgers if not v.valid]
        scratch_failed = [v for v in scratches if not v.valid]
        per_kind = self.per_kind()
        sigterm_late = per_kind.get("sigterm", {}).get("exits_over_bound", 0)
        slow_acked = per_kind.get("turn_timeout", {}).get("slow_writes", {}).get("ok", 0)
        disk_not_injected = per_kind.get("disk_full", {}).get("not_injected", 0)
        ws_failed = [c for c in self.ws_checks if not c["ok"]]
        summary = {
            "seed": self.config.seed,
            "settings": self.config.settings,
            "seconds": round(self.elapsed, 1),
            "faulty_period_s": round(self.calm_after, 1),
            "lease_ttl_s": self.config.lease_ttl,
            "load_average_before": [round(x, 2) for x in self.load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "operations": {"total": len(ops), "by_kind": by_f},
            "faults": kinds,
            "fault_kinds": per_kind,
            "failovers": {
                "measured": len(durations),
                "not_recovered_within_30s": stuck,
                "p50_s": round(statistics.median(durations), 3) if durations else None,
                "max_s": round(max(durations), 3) if durations else None,
            },
            "fence_rejections": len(re.findall(r"refused to commit", logs)),
            "stale_owner_log_lines": len(re.findall(r"StaleOwner|LeaseLost", logs)),
            "server_tracebacks": logs.count("Traceback (most recent call last)"),
            "registers": {
                "keys": len(registers),
                "ops_checked": sum(v.ops for v in registers),
                "linearizable": sum(1 for v in registers if v.valid),
                "violations": [{"key": v.key, "problems": v.problems} for v in failed],
                "unknown": [v.key for v in unknown],
            },
            "ledgers": {
                "keys": len(ledgers),
                "exact": sum(1 for v in ledgers if v.valid),
                "violations": [{"key": v.key, "problems": v.problems[:10]} for v in ledger_failed],
            },
            "scratch": {
                "keys": len(scratches),
                "exact": sum(1 for v in scratches if v.valid),
                "destroys": _count(o.type for o in ops if o.f == "destroy"),
                "acknowledged_before_last_destroy": self.wiped,
                "unchecked": [{"key": v.key, "notes": v.notes} for v in scratches if v.notes],
                "violations": [{"key": v.key, "problems": v.problems[:10]} for v in scratch_failed],
            },
            "disk_full_errors_logged": logs.count("database or disk is full"),
            "audit": {
                "records": audit.records,
                "objects": audit.objects,
                "tokens": audit.tokens,
                "single_owner": audit.valid,
                "violations": audit.violations[:20],
                "late_emissions": audit.late_emissions,
            },
            "lease_anomalies": self.lease_anomalies,
            "front_kill_checks": {
                "run": len(self.ws_checks),
                "passed": len(self.ws_checks) - len(ws_failed),
                "sockets_seen_closed_after_s": [
                    c["closed_after_s"] for c in self.ws_checks if "closed_after_s" in c
                ],
                "failed": ws_failed,
            },
            "fault_log": [
                {
                    "kind": f.kind,
                    "at_s": round(f.start - self.t0, 2),
                    "took_s": round(f.end - f.start, 2),
                    "target": f.target,
                    "owned": len(f.names),
                    **f.detail,
                }
                for f in self.faults
            ],
            "workdir": str(self.work),
        }
        summary["valid"] = bool(
            not failed
            and not unknown
            and not ledger_failed
            and not scratch_failed
            and not sigterm_late
            and not slow_acked
            and not disk_not_injected
            and audit.valid
            and not ws_failed
            and not stuck
            and registers
            and ledgers
            and (scratches or not self.config.scratches)
        )
        return summary

    def main(self) -> dict:
        """Start, run, check, stop; the summary also lands in ``workdir/summary.json``."""
        try:
            self.start_cluster()
            summary = asyncio.run(self.run_async())
        finally:
            self.stop_cluster()
            self.history.dump(self.work / "history.jsonl")
        (self.work / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


class _Socket:
    """A WebSocket client of the process tests' Room, collecting broadcast seqs."""

    def __init__(self, name: str, conn: Any) -> None:
        self.name = name
        self.conn = conn
        self.seqs: list[int] = []
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: ServerProcess, room: str, name: str) -> _Socket:
        from websockets.asyncio.client import connect

        url = f"ws://127.0.0.1:{server.port}/ws/room/{room}/?name={name}"
        conn = await connect(url, open_timeout=10, ping_interval=None, close_timeout=2)
        return cls(name, conn)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for frame in self.conn:
                message = json.loads(frame)
                if message.get("type") == "broadcast":
                    self.seqs.append(message["seq"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), 3)
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


def format_summary(s: dict) -> str:
    """The summary as a short text report."""
    ops = s["operations"]
    lines = [
        f"chaos run: seed {s['seed']}, {s['seconds']} s ({s['faulty_period_s']} s with faults), "
        f"lease TTL {s['lease_ttl_s']} s, load average {s['load_average_before']} -> "
        f"{s['load_average_after']}",
        f"operations: {ops['total']}  "
        + "  ".join(
            f"{f}: " + ", ".join(f"{k} {v}" for k, v in sorted(row.items()))
            for f, row in sorted(ops["by_kind"].items())
        ),
        "faults: " + ", ".join(f"{k} {v}" for k, v in sorted(s["faults"].items())),
        *(f"  {kind}: {_kind_line(row)}" for kind, row in s["fault_kinds"].items()),
        f"failovers measured: {s['failovers']['measured']}, p50 {s['failovers']['p50_s']} s, "
        f"max {s['failovers']['max_s']} s; not recovered within 30 s: "
        f"{s['failovers']['not_recovered_within_30s']}",
        f"fence rejections (commits refused): {s['fence_rejections']}; server tracebacks: "
        f"{s['server_tracebacks']}",
        f"registers: {s['registers']['linearizable']}/{s['registers']['keys']} keys "
        f"linearizable ({s['registers']['ops_checked']} ops checked), "
        f"violations {len(s['registers']['violations'])}, unknown {len(s['registers']['unknown'])}",
        f"ledgers: {s['ledgers']['exact']}/{s['ledgers']['keys']} exact (no acknowledged "
        f"increment missing, none applied twice)",
        f"scratch ledgers: {s['scratch']['exact']}/{s['scratch']['keys']} exact (no add "
        f"applied twice, none unsent, none acknowledged after a destroy missing); destroys "
        f"{s['scratch']['destroys']} (adds acknowledged before the last one: "
        f"{s['scratch']['acknowledged_before_last_destroy']}); disk-full errors logged "
        f"{s['disk_full_errors_logged']}",
        f"single-owner audit: {'PASS' if s['audit']['single_owner'] else 'FAIL'} "
        f"({s['audit']['records']} records, {s['audit']['objects']} objects, "
        f"{s['audit']['tokens']} tokens; late emissions {s['audit']['late_emissions']})",
        f"front kills with sockets: {s['front_kill_checks']['passed']}/"
        f"{s['front_kill_checks']['run']} passed; fresh room leases found gone at once: "
        f"{len(s['lease_anomalies'])}",
        f"verdict: {'VALID' if s['valid'] else 'VIOLATIONS FOUND'}   (workdir {s['workdir']})",
    ]
    violations = s["registers"]["violations"] + s["ledgers"]["violations"]
    for problem in violations + s["scratch"]["violations"]:
        lines.append(f"  ! {problem}")
    for problem in s["audit"]["violations"]:
        lines.append(f"  ! audit: {problem}")
    for problem in s["front_kill_checks"]["failed"]:
        lines.append(f"  ! front kill: {problem}")
    for unchecked in s["scratch"]["unchecked"]:
        lines.append(f"  - scratch not fully checked: {unchecked}")
    return "\n".join(lines)


def _kind_line(row: dict) -> str:
    """One fault kind's numbers: count, failovers, and its own checks."""
    parts = [f"{row['count']}x"]
    if row.get("failovers_measured"):
        parts.append(
            f"failover p50 {row['failover_p50_s']} s max {row['failover_max_s']} s "
            f"({row['failovers_measured']} measured)"
        )
    if "exit_s" in row:
        parts.append(
            f"exit after SIGTERM max {row['exit_max_s']} s (bound {row['exit_bound_s']} s, "
            f"over it {row['exits_over_bound']}): {row['exit_s']}"
        )
    if "destroys" in row:
        parts.append(f"destroys {row['destroys']}, owner frozen {row['owner_frozen']}")
    if "slow_writes" in row:
        slow = row["slow_writes"]
        parts.append(
            f"slow writes: TurnTimeout {slow['fail']}, acknowledged {slow['ok']} (must be 0), "
            f"indeterminate {slow['info']}"
        )
    if "commits_failed" in row:
        parts.append(f"commits failed {row['commits_failed']}, not injected {row['not_injected']}")
    return "; ".join(parts)
