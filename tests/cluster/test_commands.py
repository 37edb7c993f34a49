"""The cluster commands with real processes: ``runobjects`` and ``runcluster``.

``runobjects`` is a host without HTTP: a front (``runserver``) must route calls to the
objects it owns, and a SIGTERM must hand them back (leases released, data intact).
``runcluster`` is what ``make cluster`` runs: Redis plus three hosts, supervised.
Everything listens on 127.0.0.1 only and is killed at teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from durable_core.hosts import pid_is_running
from durable_core.testing.redis_server import RedisServer
from tests._servers import (
    MANAGE,
    ROOT,
    CommandProcess,
    free_port,
    http,
    migrate,
    server_env,
)
from tests.cluster.conftest import COUNTER, SETTINGS, Cluster, ok, wait_for

pytestmark = pytest.mark.slow

COUNTER_PATH = "/api/demo/counter/{}"

# A client-only process (no host of its own): in cluster mode its stubs route each call
# to a live host, chosen by rendezvous hashing when the object has no owner yet.
CLIENT_SCRIPT = """
import asyncio, json
from durable_core.registry import get_namespace

async def main():
    values = {}
    for name in NAMES:
        for _ in range(TIMES):
            values[name] = await get_namespace("demo.Counter").get_by_name(name).increment()
    print("VALUES " + json.dumps(values))

asyncio.run(main())
"""


def run_client(cluster: Cluster, names: list[str], times: int) -> dict[str, int]:
    """Increment each counter ``times`` times from a client-only ``manage.py shell``."""
    code = f"NAMES = {names!r}\nTIMES = {times}\n" + CLIENT_SCRIPT
    done = subprocess.run(
        [sys.executable, str(MANAGE), "shell", "-c", code],
        cwd=ROOT,
        env=server_env(cluster.var, SETTINGS, {"DURABLE_REDIS_URL": cluster.redis_server.url}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    found = re.search(r"^VALUES (.*)$", done.stdout, re.MULTILINE)
    assert done.returncode == 0 and found, f"client failed:\n{done.stdout}{done.stderr}"
    return json.loads(found.group(1))


@pytest.mark.timeout(60)
def test_runobjects_worker_serves_calls_from_a_front_and_hands_its_objects_back_on_sigterm(
    cluster: Cluster,
):
    """A ``runobjects`` worker is the only host when a client-only process first calls
    4 counters, so it owns them (its leases in Redis, its heartbeat counts 4). A
    ``runserver`` front started next forwards increments to the worker: exact values,
    and the worker keeps the leases with the same tokens while the front activates
    nothing. SIGTERM makes the worker exit 0 within 10 s, with its leases and its
    registry entry gone; the front then owns the counters itself and their values
    continue where they were."""
    redis_env = {"DURABLE_REDIS_URL": cluster.redis_server.url}
    worker = CommandProcess(
        ["runobjects"],
        cluster.var,
        cluster.tmp_path / "worker.log",
        settings=SETTINGS,
        env=redis_env,
    ).start()
    try:
        found = re.search(r"object host (\S+) running", worker.wait_output(" running", 30))
        assert found, worker.output()
        worker_id = found.group(1)
        assert worker_id.split(":")[1] == str(worker.pid)
        wait_for(
            lambda: cluster.registered_hosts().get(worker_id, {}).get("beating"),
            5,
            "the worker to register",
            worker.output,
        )
        names = [f"w{i}" for i in range(4)]
        keys = {name: cluster.object_id(name, COUNTER).key for name in names}
        assert run_client(cluster, names, 3) == dict.fromkeys(names, 3)
        owned = {name: cluster.lease_of(keys[name]) for name in names}
        assert all(o is not None and o[0] == worker_id for o in owned.values()), owned

        [front] = cluster.start(1)
        front_id = cluster.host_id(front)
        for expected in (4, 5):
            for name in names:
                path = COUNTER_PATH.format(name)
                assert ok(front.post(path), front)["value"] == expected, worker.output()
        for name in names:
            assert ok(front.get(COUNTER_PATH.format(name)), front)["value"] == 5
            assert cluster.lease_of(keys[name]) == owned[name], "the front took a counter"

        def heartbeats(worker_objects: int, front_objects: int):
            def check() -> bool:
                hosts = cluster.registered_hosts()
                return (
                    hosts.get(worker_id, {}).get("objects") == worker_objects
                    and hosts.get(front_id, {}).get("objects") == front_objects
                )

            return check

        wait_for(heartbeats(4, 0), 5, "heartbeats: worker 4 objects, front 0", worker.output)

        worker.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = worker.wait_exit(10)
        stopped_in = time.monotonic() - sent
        assert code == 0, worker.output()
        assert f"object host {worker_id} stopped" in worker.text()
        assert {name: cluster.lease_of(keys[name]) for name in names} == dict.fromkeys(names)
        assert worker_id not in cluster.registered_hosts()

        for name in names:
            assert ok(front.post(COUNTER_PATH.format(name)), front)["value"] == 6
            holder = cluster.lease_of(keys[name])
            assert holder is not None and holder[0] == front_id, (name, holder)
            assert holder[1] > owned[name][1], (name, owned[name], holder)
        wait_for(heartbeats(None, 4), 5, "the front's heartbeat to count 4", cluster.logs)
    finally:
        worker.cleanup()
    print(f"runobjects stopped {stopped_in:.2f}s after SIGTERM, leases released")


@pytest.mark.timeout(30)
def test_runobjects_without_a_redis_url_exits_non_zero_with_a_clear_message(tmp_path: Path):
    """No DURABLE_REDIS_URL means embedded mode, where a worker cannot help: the command
    exits non-zero at once, naming cluster mode and the setting to set."""
    var = tmp_path / "var"
    var.mkdir()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(MANAGE), "runobjects"],
        cwd=ROOT,
        env=server_env(var, "config.settings"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )
    took = time.monotonic() - started
    assert done.returncode != 0, done
    assert "runobjects needs cluster mode" in done.stderr, done.stderr
    assert "REDIS_URL" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert took < 15, f"took {took:.1f}s to refuse"


# -- stopping a host ---------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.django_db(transaction=True)
async def test_stopping_a_cluster_host_finishes_when_a_redis_call_swallowed_the_cancel(
    redis_server: RedisServer, settings
):
    """SIGTERM to ``runobjects`` or ``runserver`` runs ``stop_host()``. A cluster host
    (in this process, real Redis) is stopped while its dead-front janitor is inside a
    Redis call that swallows one cancellation, as ``asyncio.wait_for`` does on Python
    3.11 when the cancel arrives just as the awaited send completes (redis-py wraps
    every send in it). The fake stands in for that race, which real processes hit only
    now and then. ``stop_host()`` must still finish within 5 s."""
    from django.test import override_settings

    from durable_core.host import start_host, stop_host

    configured = dict(settings.DURABLE_OBJECTS, REDIS_URL=redis_server.url)
    with override_settings(DURABLE_OBJECTS=configured):
        host = await start_host()
        inside = asyncio.Event()
        swallowed = []

        async def claim_that_swallows_one_cancel() -> list:
            inside.set()
            if swallowed:
                return []
            try:
                await asyncio.sleep(3600)  # the Redis round trip, in flight at the cancel
            except asyncio.CancelledError:
                swallowed.append(True)  # what Python 3.11's wait_for does in that race
            return []

        host.registry.claim_dead_front_objects = claim_that_swallows_one_cancel
        await asyncio.wait_for(inside.wait(), 5)
        stopping = asyncio.ensure_future(stop_host())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        if not done:  # clean up: a second cancel ends the loop, then the stop completes
            for task in host._tasks:
                task.cancel()
            await asyncio.wait_for(stopping, 10)
        assert swallowed, "the fake never saw the cancel: the test proves nothing"
        assert done, "stop_host() still waiting 5 s after the janitor swallowed its cancel"


# -- runcluster --------------------------------------------------------------------------


def free_port_range(count: int) -> int:
    """A base port P with P..P+count-1 free on 127.0.0.1 a moment ago."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError("no free range of ports")


def answers(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def increment(port: int, name: str, give_up: float = 15.0) -> int:
    """One increment of counter ``name`` through the host on ``port``, sent again with
    the same Idempotency-Key after a failed attempt; returns the acknowledged value."""
    key = uuid.uuid4().hex
    end = time.monotonic() + give_up
    last: object = None
    while time.monotonic() < end:
        try:
            result = http(
                "POST",
                f"http://127.0.0.1:{port}{COUNTER_PATH.format(name)}",
                timeout=10,
                headers={"Idempotency-Key": key},
            )
        except OSError as exc:
            last = exc
        else:
            if result.status == 200:
                return result.body["value"]
            last = result
        time.sleep(0.1)
    raise AssertionError(f"increment of {name} via :{port} not acknowledged: {last}")


@pytest.mark.timeout(90)
def test_runcluster_starts_redis_and_three_hosts_restarts_a_killed_one_and_stops_on_sigint(
    tmp_path: Path,
):
    """``manage.py runcluster --port P`` (``make cluster``) on a migrated VAR_DIR: Redis
    and hosts on P+1..P+3, each /healthz in mode "cluster" with the pid it printed.
    kill -9 of the host owning a counter: the supervisor says that host died and which
    keep serving, the other two keep incrementing the counter with exact values, and
    the dead host is started again (new pid, new host id) and serves the same counter.
    SIGINT stops the supervisor within 20 s, every host having stopped gracefully
    (its log says so), with every process it printed gone and no port answering."""
    var = tmp_path / "var"
    migrate(var)
    base = free_port_range(4)
    ports = [base + 1, base + 2, base + 3]
    supervisor = CommandProcess(
        ["runcluster", "--port", str(base)], var, tmp_path / "runcluster.log"
    ).start()
    pids: set[int] = set()
    try:
        text = supervisor.wait_output("cluster up", 30)
        redis_found = re.search(r"redis: redis://127\.0\.0\.1:(\d+)/0 \(pid (\d+)\)", text)
        assert redis_found, supervisor.output()
        redis_port, redis_pid = int(redis_found.group(1)), int(redis_found.group(2))
        pids.add(redis_pid)
        printed = {int(p): int(pid) for p, pid in re.findall(r"host on :(\d+): pid (\d+)", text)}
        assert sorted(printed) == ports, supervisor.output()
        pids.update(printed.values())

        def healthy(port: int) -> dict | None:
            try:
                result = http("GET", f"http://127.0.0.1:{port}/healthz", timeout=2)
            except OSError:
                return None
            return result.body if result.status == 200 else None

        health = {}
        for port in ports:
            health[port] = wait_for(
                lambda port=port: healthy(port), 30, f"/healthz on :{port}", supervisor.output
            )
            assert health[port]["mode"] == "cluster", health[port]
            assert health[port]["pid"] == printed[port], (port, health[port], printed)

        victim, *others = ports
        values = [increment(victim, "c")]  # first access wins: the victim owns c
        values += [increment(port, "c") for port in others]
        assert values == [1, 2, 3]

        os.kill(printed[victim], signal.SIGKILL)
        killed = time.monotonic()
        died = (
            f"host on :{victim} (pid {printed[victim]}) died (exit -9); "
            f"still serving: :{others[0]}, :{others[1]}"
        )
        supervisor.wait_output(died, 5)
        took = []
        for expected in range(4, 10):
            sent = time.monotonic()
            assert increment(others[expected % 2], "c") == expected
            took.append(time.monotonic() - sent)
        served_after = time.monotonic() - killed

        restart = re.compile(rf"host on :{victim}: pid (\d+)")

        def restarted() -> int | None:
            found = restart.findall(supervisor.text())
            return int(found[-1]) if len(found) == 2 else None

        new_pid = wait_for(restarted, 10, "the dead host to be started again", supervisor.output)
        pids.add(new_pid)
        assert new_pid != printed[victim]
        again = wait_for(lambda: healthy(victim), 30, "the restarted host", supervisor.output)
        assert again["pid"] == new_pid and again["host"] != health[victim]["host"], again
        assert again["mode"] == "cluster"
        assert increment(victim, "c") == 10
        for port in ports:
            got = http("GET", f"http://127.0.0.1:{port}{COUNTER_PATH.format('c')}")
            assert got.status == 200 and got.body["value"] == 10, (port, got)
        back_in = time.monotonic() - killed

        supervisor.send_signal(signal.SIGINT)
        sent = time.monotonic()
        supervisor.wait_exit(20)
        stopped_in = time.monotonic() - sent
        assert "stopping the cluster" in supervisor.text()
        left = sorted(pid for pid in pids if pid_is_running(pid))
        host_logs = "".join(log.read_text() for log in var.glob("host-*.log"))
        unstopped = [
            pid
            for pid in (new_pid, *(printed[port] for port in others))
            if not re.search(rf"object host [^:\s]+:{pid}:\w+ stopped", host_logs)
        ]
        assert not left, (
            f"processes left running: {left}; hosts that never logged 'stopped' (hung "
            f"in stop_host): {unstopped}\n{supervisor.output()}"
        )
        assert not unstopped, f"hosts not stopped gracefully: {unstopped}"
        listening = [p for p in [redis_port, *ports] if answers(p)]
        assert not listening, f"ports still answering: {listening}"
    finally:
        supervisor.cleanup()
        for pid in pids:  # only processes this supervisor started and printed
            if pid_is_running(pid):
                os.kill(pid, signal.SIGKILL)
    print(
        f"runcluster: 6 increments via the others done {served_after:.2f}s after kill -9 "
        f"(each took {', '.join(f'{t:.2f}' for t in took)}s), "
        f"dead host back after {back_in:.2f}s, SIGINT stopped all in {stopped_in:.2f}s"
    )
