"""The chaos driver: Redis + 3 hosts, client workloads, seeded faults, checkers, summary.

Three ``manage.py runserver`` hosts share one VAR_DIR and one private Redis (as
``tests/cluster`` does) with a short lease TTL. Asyncio HTTP clients run CAS-register and
ledger-counter workloads against them, each operation recorded in a ``History``; a fault
loop injects, in a seeded random order, ``kill -9`` of a host (restarted after),
``kill -STOP``/``-CONT`` past the lease TTL, a Redis restart with empty data, and the
kill of a front holding WebSockets attached to an object owned by another host. Then the
history checker (linearizability per register, exactness per ledger), the single-owner
audit and the WebSocket checks give their verdicts, and a summary is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import statistics
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
from .checker import check_ledger, check_register
from .history import History, Op

SETTINGS = "tests.chaos.settings"
KINDS = ("kill9", "pause", "redis_restart", "front_kill")
ROOM = "process_app.Room"


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
    epoch: float = 15.0  # register keys change every epoch (short histories to check)
    fault_gap: tuple[float, float] = (1.5, 4.0)
    op_deadline: float = 12.0  # an operation unanswered this long is indeterminate
    attempt_timeout: float = 4.0
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
        self, op: Op, path: str, body: dict, rng: random.Random, patient: bool = True
    ) -> tuple[str, Any]:
        """Send one operation, retrying on any host with the same call id until answered
        or the deadline passes: ("ok", result) or ("info", None)."""
        deadline = time.monotonic() + self.config.op_deadline
        headers = {"Idempotency-Key": f"{self.run_id}-{op.id}"}
        while time.monotonic() < deadline:
            server = rng.choice(self.servers)
            op.attempts += 1
            attempt = self.config.attempt_timeout
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
            self.names_in_use[name] = "chaos.Register"
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
        self.names_in_use[name] = "chaos.Ledger"
        while not self.stopping:
            op = self.history.invoke(f"l{index}.{client}", name, "add", None)
            op.args = f"{self.run_id}-{op.id}"
            kind, result = await self.perform(
                op, f"/c/ledger/{name}", {"op": op.args}, rng, patient=client % 2 == 0
            )
            self.history.complete(op, kind, result)
            await asyncio.sleep(rng.uniform(*self.config.think))

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
            if namespace == "chaos.Register":
                method, path, body = "POST", f"/c/register/{name}", {"f": "read"}
            else:
                method, path, body = "GET", f"/c/ledger/{name}?count=1", None
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
        await self.fault_loop(until=self.t0 + config.seconds)
        calm = time.monotonic()
        await asyncio.sleep(2.0)  # a little traffic on the healed cluster
        self.stopping = True
        await asyncio.wait_for(asyncio.gather(*clients), config.op_deadline + 30)
        self.elapsed = time.monotonic() - self.t0
        self.calm_after = calm - self.t0
        return await self.check()

    async def final_ledger(self, name: str) -> dict | None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for server in self.servers:
                with contextlib.suppress(OSError, TimeoutError, ValueError):
                    status, body = await _http.request(
                        "GET", f"{server.url}/c/ledger/{name}", timeout=5
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
                from .checker import Verdict

                ledger_verdicts.append(Verdict(key, False, len(ops), problems=["unreadable"]))
            else:
                ledger_verdicts.append(check_ledger(key, ops, final["ops"], final["n"]))
        audit = check_audit(load(sorted(self.work.glob("audit-host*.jsonl"))))
        logs = "\n".join(server.text() for server in self.servers)
        return self.summarize(register_verdicts, ledger_verdicts, audit, logs)

    def failover_durations(self) -> tuple[list[float], int]:
        """Measured failovers (seconds) and how many did not recover within 30 s."""
        durations = [f.detail["failover_s"] for f in self.faults if f.detail.get("failover_s")]
        stuck = sum(1 for f in self.faults if f.detail.get("not_recovered_within_30s"))
        return durations, stuck

    def summarize(self, registers, ledgers, audit, logs: str) -> dict:
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
            and audit.valid
            and not ws_failed
            and not stuck
            and registers
            and ledgers
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
        f"single-owner audit: {'PASS' if s['audit']['single_owner'] else 'FAIL'} "
        f"({s['audit']['records']} records, {s['audit']['objects']} objects, "
        f"{s['audit']['tokens']} tokens; late emissions {s['audit']['late_emissions']})",
        f"front kills with sockets: {s['front_kill_checks']['passed']}/"
        f"{s['front_kill_checks']['run']} passed; fresh room leases found gone at once: "
        f"{len(s['lease_anomalies'])}",
        f"verdict: {'VALID' if s['valid'] else 'VIOLATIONS FOUND'}   (workdir {s['workdir']})",
    ]
    for problem in s["registers"]["violations"] + s["ledgers"]["violations"]:
        lines.append(f"  ! {problem}")
    for problem in s["audit"]["violations"]:
        lines.append(f"  ! audit: {problem}")
    for problem in s["front_kill_checks"]["failed"]:
        lines.append(f"  ! front kill: {problem}")
    return "\n".join(lines)
