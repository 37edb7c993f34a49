"""WebSocket broadcast fan-out: a durable object's broadcast vs a plain Channels group_send.

Both systems run in the same run against one private ``redis-server`` on a free loopback
port, with 500 real WebSocket clients (the ``websockets`` package) split over two server
processes, 250 each, held by four client worker processes (one per server and system):

* durable: three ``manage.py runserver`` hosts in cluster mode (``tests.process_settings``).
  Two are fronts holding the sockets; the third owns the ``process_app.Room`` object (it
  is activated there by an HTTP call before any socket connects, and the Redis lease is
  checked to name it). A broadcast is a socket message ``{"type": "broadcast"}``: the
  front passes it to the owner, whose turn commits the new seq and then sends one
  envelope per front; each front fans it out to its sockets.
* channels: two ``daphne`` processes serving ``bench/_ws_group_asgi.py``: every consumer
  joins one group; a broadcast message makes its consumer call ``group_send`` on the
  RedisChannelLayer (channels_redis) and every member writes the same frame to its socket.

A broadcast's latency, per socket, is from just before the sending client writes the
message to just after that socket's client has read the frame (CLOCK_MONOTONIC, which is
one clock for every process on a Linux machine). The sender changes with every broadcast
(alternating between the two servers), broadcasts run one at a time (the next starts when
all 500 sockets got the previous one), and each must reach every socket exactly once.
Rounds alternate between the systems; figures are medians over rounds, warm-up excluded.
Writes bench/results/ws_broadcast.json.

    .venv/bin/python bench/ws_broadcast.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    PROTOCOL,
    machine,
    percentile,
    progress,
    rounded,
    save_result,
    serve_commands,
    versions,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SETTINGS = "tests.process_settings"
ROOM = "process_app.Room"
SOCKETS = 500  # the headline figure; the curve adds 100 … 2,000
PER_SERVER = SOCKETS // 2
SYSTEMS = ("durable", "channels")


def now() -> float:
    """CLOCK_MONOTONIC: the same clock in every process of this machine."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


# -- statistics -------------------------------------------------------------------------


def summarize(broadcasts: list[list[float]], elapsed: float) -> dict:
    """One round (a list of broadcasts, each the latencies of its 500 deliveries, s)."""
    every = sorted(x for one in broadcasts for x in one)
    last = sorted(max(one) for one in broadcasts)
    return {
        "p50_ms": percentile(every, 50) * 1000,
        "p90_ms": percentile(every, 90) * 1000,
        "p99_ms": percentile(every, 99) * 1000,
        "max_ms": every[-1] * 1000,
        "mean_ms": statistics.fmean(every) * 1000,
        "last_socket_p50_ms": percentile(last, 50) * 1000,
        "last_socket_p99_ms": percentile(last, 99) * 1000,
        "broadcasts_per_s": len(broadcasts) / elapsed,
        "deliveries": len(every),
    }


def median_of(rounds: list[dict]) -> dict:
    """Median over rounds of every figure, and the spread of p50 and p99."""
    out = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if k != "deliveries"}
    for k in ("p50_ms", "p99_ms"):
        out[f"{k}_range"] = [min(r[k] for r in rounds), max(r[k] for r in rounds)]
    out["deliveries_per_round"] = rounds[0]["deliveries"]
    return out


# -- worker side: client processes ----------------------------------------------------------


async def clients_worker(url: str, count: str, prefix: str) -> None:
    """Hold ``count`` sockets to ``url``; send broadcasts and report when each arrived.

    Commands (one JSON line each on stdin): ``send`` (index, text) writes a broadcast
    from one socket and answers its start time; ``wait`` (text) answers the arrival time
    at every socket once all have it (and how many got it more than once).
    """
    from websockets.asyncio.client import connect

    count_n = int(count)
    arrivals: list[dict[str, list[float]]] = [{} for _ in range(count_n)]
    conns = []
    for start in range(0, count_n, 50):
        conns += await asyncio.gather(
            *(
                connect(
                    f"{url}?name={prefix}{i}",
                    proxy=None,
                    ping_interval=None,
                    open_timeout=30,
                    max_size=None,
                )
                for i in range(start, min(count_n, start + 50))
            )
        )

    async def read(i: int) -> None:
        conn, mine = conns[i], arrivals[i]
        async for message in conn:
            arrived = now()
            frame = json.loads(message)
            if frame.get("type") == "broadcast":
                mine.setdefault(frame["text"], []).append(arrived)

    readers = [asyncio.create_task(read(i)) for i in range(count_n)]

    async def send(command: dict) -> dict:
        conn = conns[command["index"] % count_n]
        message = json.dumps({"type": "broadcast", "text": command["text"]})
        started = now()
        await conn.send(message)
        return {"started": started}

    async def wait(command: dict) -> dict:
        text, deadline = command["text"], now() + command["timeout"]
        while True:
            late = sum(1 for mine in arrivals if text not in mine)
            if not late:
                break
            if now() > deadline or any(r.done() for r in readers):
                closed = sum(1 for r in readers if r.done())
                return {"error": f"{late} sockets lack {text!r} ({closed} closed)"}
            await asyncio.sleep(0.0005)
        times = [mine[text][0] for mine in arrivals]
        twice = sum(1 for mine in arrivals if len(mine.pop(text)) > 1)
        return {"times": times, "duplicates": twice}

    await serve_commands({"send": send, "wait": wait})
    for reader in readers:
        reader.cancel()


# -- orchestrator side --------------------------------------------------------------------


class Worker:
    """A client worker subprocess answering JSON commands on stdout."""

    def __init__(self, name: str, args: list[str], log_dir: Path) -> None:
        self.sockets = int(args[1])
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._buffer = b""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--role", "clients", *args],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )

    def write(self, command: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float) -> dict:
        import select

        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            line, sep, rest = self._buffer.partition(b"\n")
            if sep:
                self._buffer = rest
                if line.startswith(PROTOCOL):
                    reply = json.loads(line[len(PROTOCOL) :])
                    if "error" in reply:
                        raise RuntimeError(f"{self.name}: {reply}\n{self.tail()}")
                    return reply
                continue
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: no answer within {timeout}s\n{self.tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited\n{self.tail()}")
                self._buffer += chunk

    def request(self, command: dict, timeout: float = 60) -> dict:
        self.write(command)
        return self.read(timeout)

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Daphne:
    """A plain ``daphne`` process serving the group_send baseline."""

    def __init__(self, port: int, env: dict, log_dir: Path, name: str) -> None:
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "ab") as log:
            argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
            self.proc = subprocess.Popen(
                [*argv, "bench._ws_group_asgi:application"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited\n{self.log_path.read_text()[-4000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne not listening after {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def measure_round(workers: list[Worker], label: str, count: int, timeout: float) -> list:
    """``count`` broadcasts one after another, senders alternating between the servers;
    returns the per-socket latencies (s) of each and the seconds it all took."""
    broadcasts = []
    started = now()
    for k in range(count):
        text = f"{label}-{k}-".ljust(100, "x")  # 100 characters in every frame
        sender = workers[k % 2]
        begun = sender.request({"op": "send", "index": k // 2 + 1, "text": text})["started"]
        for worker in workers:
            worker.write({"op": "wait", "text": text, "timeout": timeout})
        times: list[float] = []
        for worker in workers:
            reply = worker.read(timeout + 10)
            if reply["duplicates"]:
                raise RuntimeError(f"{label}: {reply['duplicates']} sockets got {text!r} twice")
            times += reply["times"]
        expected = sum(worker.sockets for worker in workers)
        assert len(times) == expected, (len(times), expected)
        broadcasts.append([t - begun for t in times])
    return [broadcasts, now() - started]


def measure_sockets(
    workers: dict[str, list[Worker]],
    size: int,
    repeats: int,
    broadcasts: int,
    warmup: int,
    timeout: float,
) -> dict[str, list]:
    """Warm-up, then ``repeats`` rounds per system, alternating which goes first."""
    for system in SYSTEMS:
        measure_round(workers[system], f"{system}-{size}-warmup", warmup, timeout)
    raw: dict[str, list] = {s: [] for s in SYSTEMS}
    for r in range(repeats):
        order = SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]
        for system in order:
            rounds, elapsed = measure_round(
                workers[system], f"{system}-{size}-r{r}", broadcasts, timeout
            )
            raw[system].append(summarize(rounds, elapsed))
            progress(
                f"{size} sockets, round {r + 1}/{repeats} {system}: p50 "
                f"{raw[system][-1]['p50_ms']:.1f} ms, p99 {raw[system][-1]['p99_ms']:.1f} ms"
            )
    return raw


def start_systems(work: Path, redis_url: str, logs: Path) -> tuple[dict, list]:
    """Both systems' servers; returns the WebSocket URL of each server per system, and
    every process to stop at the end."""
    from tests._servers import ServerProcess, free_port, migrate

    var = work / "var"
    migrate(var, SETTINGS)
    (var / "id_key").write_text(secrets.token_hex(32) + "\n")  # before the servers race
    env = {"DURABLE_REDIS_URL": redis_url, "DURABLE_LOG": "WARNING"}
    hosts = [
        ServerProcess(var, logs / f"durable-{name}.log", settings=SETTINGS, env=env)
        for name in ("front-a", "front-b", "owner")
    ]
    daphne_env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    daphne_env.update(
        VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DURABLE_REDIS_URL=redis_url,
        PYTHONPATH=str(ROOT),
    )
    baseline = [Daphne(free_port(), daphne_env, logs, f"daphne-{n}") for n in "ab"]
    processes: list = [*hosts, *baseline]
    for host in hosts:
        host.start()
    for host in hosts:
        host.wait_ready(60)
    for daphne in baseline:
        daphne.wait_ready()

    *fronts, owner = hosts
    # The owner activates the room first (first access wins), before any socket connects.
    info = owner.get("/t/room/bench/info")
    assert info.status == 200, info
    leases = current_leases(redis_url)
    owner_id = owner.get("/healthz").body["host"]
    assert leases == [f"{owner_id}|{info.body['token']}"], (leases, owner_id)
    urls = {
        "durable": [f"ws://127.0.0.1:{f.port}/ws/room/bench/" for f in fronts],
        "channels": [f"ws://127.0.0.1:{d.port}/ws/room/bench/" for d in baseline],
    }
    return {"urls": urls, "owner": owner_id, "lease": leases[0]}, processes


def current_leases(redis_url: str) -> list[str]:
    """Every ``host_id|token`` lease value in Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return [client.get(k).decode() for k in client.scan_iter(match="durable:lease:*")]
    finally:
        client.close()


def orchestrate(quick: bool) -> dict:
    from durable_core.testing.redis_server import RedisServer

    params = {
        "quick": quick,
        "sockets": SOCKETS,
        "servers_per_system": 2,
        "repeats": 3 if quick else 5,
        "broadcasts_per_round": 30 if quick else 100,
        "warmup_broadcasts": 10 if quick else 20,
        "frame_text_chars": 100,
        "timeout_s": 30,
        # broadcast latency vs sockets (per system; the 500 point is the headline above)
        "curve_sockets": [100, SOCKETS] if quick else [100, SOCKETS, 1000, 2000],
        "curve_repeats": 1 if quick else 3,
        "curve_broadcasts": 15 if quick else 40,
    }
    work = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    logs = work / "logs"
    logs.mkdir()
    redis_server = RedisServer(work / "redis")
    processes: list = []
    workers: dict[str, list[Worker]] = {}
    ok = False
    try:
        redis_server.start()
        progress(f"redis-server on {redis_server.url}; work dir {work}")
        load = [os.getloadavg()[0]]
        meta = {
            "versions": versions("autobahn", "Twisted", "websockets", redis_url=redis_server.url)
        }
        layout, processes = start_systems(work, redis_server.url, logs)
        progress(f"servers up; room owned by {layout['owner']}")
        raw: dict[str, list] = {}
        curve = []
        for size in params["curve_sockets"]:
            headline = size == SOCKETS
            per_server = size // 2
            for system in SYSTEMS:
                workers[system] = [
                    Worker(
                        f"{system}-clients-{i}", [url, str(per_server), f"{system[0]}{i}-"], logs
                    )
                    for i, url in enumerate(layout["urls"][system])
                ]
            for system in SYSTEMS:
                for worker in workers[system]:
                    worker.read(120)  # connected
            progress(f"{2 * size} sockets connected ({size} per system)")
            rounds = measure_sockets(
                workers,
                size,
                params["repeats"] if headline else params["curve_repeats"],
                params["broadcasts_per_round"] if headline else params["curve_broadcasts"],
                params["warmup_broadcasts"],
                params["timeout_s"],
            )
            if headline:
                raw = rounds
            point = {"sockets": size}
            for system in SYSTEMS:
                summary = median_of(rounds[system])
                point[system] = {k: summary[k] for k in ("p50_ms", "p90_ms", "p99_ms")}
            point["p50_vs_channels"] = point["durable"]["p50_ms"] / point["channels"]["p50_ms"]
            curve.append(point)
            for group in workers.values():
                for worker in group:
                    worker.request({"op": "quit"})
                    worker.stop()
            workers.clear()
        load.append(os.getloadavg()[0])
        leases = current_leases(redis_server.url)
        if leases != [layout["lease"]]:  # every durable broadcast went through that owner
            raise RuntimeError(f"the room changed hands: {layout['lease']} -> {leases}")
        result = build_result(raw, params, dict(meta, load=load, layout=layout))
        result["curves"] = {
            "broadcast_latency_vs_sockets": {
                "x": "sockets",
                "unit": "ms per delivery (median of rounds)",
                "points": rounded(curve, 3),
            }
        }
        ok = True
        return result
    finally:
        for group in workers.values():
            for worker in group:
                worker.stop()
        for process in processes:
            if isinstance(process, Daphne):
                process.stop()
            else:
                process.cleanup()
        redis_server.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            progress(f"failed: logs kept in {logs}")


def build_result(raw: dict, params: dict, meta: dict) -> dict:
    figures = {system: median_of(rounds) for system, rounds in raw.items()}
    durable, channels = figures["durable"], figures["channels"]
    ratios = {
        k.replace("_ms", "_vs_channels"): durable[k] / channels[k]
        for k in ("p50_ms", "p90_ms", "p99_ms", "last_socket_p50_ms", "last_socket_p99_ms")
    }
    ratios["broadcasts_per_s_vs_channels"] = (
        durable["broadcasts_per_s"] / channels["broadcasts_per_s"]
    )
    return {
        "benchmark": "ws_broadcast",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(meta["load"]),
        "versions": meta["versions"],
        "mode": "quick" if params["quick"] else "full",
        "params": {k: v for k, v in params.items() if k != "quick"},
        "units": {
            "*_ms": "milliseconds from just before the sender writes the message to just "
            "after a socket's client read the frame, over every delivery of a round",
            "last_socket_*_ms": "per broadcast, the latency of the last of the 500 sockets",
            "broadcasts_per_s": "broadcasts completed (all 500 sockets served) per second, "
            "one at a time",
            "*_vs_channels": "durable figure / channels figure of the same run "
            "(latency: >1 is slower; broadcasts_per_s: <1 is slower)",
        },
        "setup": {
            "durable": "2 fronts + 1 owner: `manage.py runserver` hosts in cluster mode "
            "(redis-pubsub transport) sharing one VAR_DIR; process_app.Room owned by the "
            f"third host (lease {meta['layout']['lease']}); a broadcast commits the room's "
            "seq, then leaves as one envelope per front",
            "channels": "2 `daphne` processes, one RedisChannelLayer group of 500 consumers; "
            "a broadcast is one group_send; every member writes the same frame",
            "clients": f"{SOCKETS} sockets per system, {PER_SERVER} per server, held by one "
            "client process per server (websockets asyncio client); the sender alternates "
            "between the servers and changes socket every broadcast",
            "rounds": "rounds alternate between the systems (order flipped every round); "
            "figures are medians over rounds; warm-up broadcasts excluded",
        },
        "figures": rounded(figures, 3),
        "ratios": rounded(ratios, 3),
        "raw_rounds": rounded(raw, 3),
    }


def print_table(result: dict) -> None:
    machine, v = result["machine"], result["versions"]
    print(
        f"\n{result['date']}, {result['mode']} run, {machine['cpus']} CPUs, load average "
        f"{' -> '.join(f'{x:.2f}' for x in machine['load_average_1min_start_end'])}; "
        f"Python {v['python']}, redis-server {v['redis-server']}, channels {v['channels']}, "
        f"channels_redis {v['channels-redis']}, daphne {v['daphne']}"
    )
    params = result["params"]
    print(
        f"Broadcast fan-out to {params['sockets']} sockets over 2 servers, median of "
        f"{params['repeats']} rounds x {params['broadcasts_per_round']} broadcasts (ms)"
    )
    header = (
        f"{'system':<10} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} "
        f"{'last p50':>9} {'last p99':>9} {'bcast/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for system, f in result["figures"].items():
        print(
            f"{system:<10} {f['p50_ms']:>7.1f} {f['p90_ms']:>7.1f} {f['p99_ms']:>7.1f} "
            f"{f['max_ms']:>7.1f} {f['last_socket_p50_ms']:>9.1f} "
            f"{f['last_socket_p99_ms']:>9.1f} {f['broadcasts_per_s']:>8.1f}"
        )
    r = result["ratios"]
    print(
        f"durable / channels: p50 {r['p50_vs_channels']:.2f}x, p99 {r['p99_vs_channels']:.2f}x, "
        f"last socket p50 {r['last_socket_p50_vs_channels']:.2f}x, "
        f"broadcasts/s {r['broadcasts_per_s_vs_channels']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and broadcasts")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)  # worker processes
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        assert role == "clients", role
        asyncio.run(clients_worker(*rest))
        return
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks kill every child.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: sys.exit(1))
    # 2,000 sockets per system: every child (servers, clients) inherits the raised limit.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.monotonic()
    result = orchestrate(args.quick)
    result["wall_time_s"] = round(time.monotonic() - started, 1)
    path = save_result("ws_broadcast", result)
    print_table(result)
    print(f"\nwall time {result['wall_time_s']} s; wrote {path}")


if __name__ == "__main__":
    main()
