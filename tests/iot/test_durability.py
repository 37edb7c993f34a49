"""The twin, its version and metadata, and the pending offline alarm survive a
``kill -9`` of the embedded server (restart on the same VAR_DIR) and of the owner in
cluster mode (the other host takes the object over and fires the alarm)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest
from websockets.asyncio.client import connect

from tests._servers import ServerProcess, http, migrate
from tests.cluster.conftest import Cluster, cluster, redis_server  # noqa: F401
from tests.iot.conftest import in_own_loop, recv_json, recv_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PERSISTENT = ("state", "metadata", "version", "timestamp", "device_id")


def twin_of(server: ServerProcess, device: str, timeout: float = 20) -> dict:
    """GET the twin, retrying 503s (a failover in progress) for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = http("GET", f"{server.url}/api/devices/{device}/twin", timeout=15)
        if result.status == 200:
            return result.body
        assert result.status == 503 and time.monotonic() < deadline, (result, server.output())
        time.sleep(0.2)


def stored_alarm(path) -> float | None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM _do_meta WHERE key='alarm'").fetchone()
    finally:
        conn.close()
    return None if row is None or row[0] is None else float(row[0])


def object_path(var, object_id):
    return var / "objects" / "iot.Device" / object_id.hex[:2] / f"{object_id.hex}.sqlite3"


def listed(server: ServerProcess, device: str) -> dict | None:
    devices = http("GET", f"{server.url}/api/devices/", timeout=10).body["devices"]
    return next((d for d in devices if d["device_id"] == device), None)


def wait_listed(server: ServerProcess, device: str, state: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        entry = listed(server, device)
        if entry is not None and entry["connection"]["state"] == state:
            return time.monotonic()
        assert time.monotonic() < deadline, (
            f"{device} never listed {state}: {entry}\n{server.output()}"
        )
        time.sleep(0.1)


@in_own_loop
async def test_kill9_and_restart_keeps_twin_and_fires_the_pending_alarm(tmp_path):
    from tests.iot.test_server import object_file

    var = tmp_path / "var"
    migrate(var)
    env = {"IOT_HEARTBEAT_TIMEOUT": "3"}
    first = ServerProcess(var, tmp_path / "first.log", env=env).run(30)
    second = None
    try:
        body = {
            "state": {
                "desired": {"color": "RED", "cfg": {"fan": [1, 2]}},
                "reported": {"color": "GREEN"},
            }
        }
        assert http("PATCH", f"{first.url}/api/devices/boiler/twin", body).status == 200
        url = f"ws://127.0.0.1:{first.port}/ws/devices/boiler/"
        async with connect(url, origin=first.url) as device:
            await recv_json(device)
            await device.send(json.dumps({"type": "report", "state": {"cfg": {"fan": [1]}}}))
            assert (await recv_json(device))["version"] == 2
            await asyncio.to_thread(wait_listed, first, "boiler", "connected", 5)
            before = await asyncio.to_thread(twin_of, first, "boiler")
            alarm = stored_alarm(object_file(first, "boiler"))
            assert alarm is not None and alarm > time.time()  # pending when the host dies
            first.kill9()
        second = ServerProcess(var, tmp_path / "second.log", env=env).run(30)
        # Nobody calls the device: its alarm (or its dead front) wakes it, and it writes
        # "disconnected" into the list itself.
        await asyncio.to_thread(wait_listed, second, "boiler", "disconnected", 15)
        after = await asyncio.to_thread(twin_of, second, "boiler")
        assert {k: after[k] for k in PERSISTENT} == {k: before[k] for k in PERSISTENT}
        assert after["connection"]["state"] == "disconnected"
        assert stored_alarm(object_file(second, "boiler")) is None
    finally:
        first.cleanup()
        if second is not None:
            second.cleanup()


@in_own_loop
async def test_owner_kill9_in_a_cluster_keeps_twin_and_the_alarm_fires_on_the_new_owner(
    cluster: Cluster,  # noqa: F811
):
    timeout = 4.0
    env = {"DURABLE_REDIS_URL": cluster.redis_server.url, "IOT_HEARTBEAT_TIMEOUT": str(timeout)}
    servers = []
    for name in ("front", "owner"):
        server = ServerProcess(cluster.var, cluster.tmp_path / f"{name}.log", env=env)
        cluster.servers.append(server)
        servers.append(server.start())
    for server in servers:
        server.wait_ready(30)
    front, owner = servers
    object_id = cluster.object_id("valve", namespace="iot.Device")

    body = {"state": {"desired": {"open": True, "limits": {"max": 80}}}}
    assert http("PATCH", f"{owner.url}/api/devices/valve/twin", body).status == 200
    assert cluster.lease_of(object_id.key)[0] == cluster.host_id(owner)  # first access wins

    async with (
        connect(f"ws://127.0.0.1:{front.port}/ws/devices/valve/watch/", origin=front.url) as watch,
        connect(f"ws://127.0.0.1:{front.port}/ws/devices/valve/", origin=front.url) as device,
    ):
        await recv_until(watch, "offline", 10)  # the state when watching began
        await recv_json(device, 10)
        await recv_until(watch, "online", 10)
        await device.send(json.dumps({"type": "report", "state": {"open": True}}))
        assert (await recv_json(device, 10))["version"] == 2
        last_message = time.monotonic()
        before = await asyncio.to_thread(twin_of, front, "valve")
        assert before["state"]["delta"] == {"limits": {"max": 80}}
        assert stored_alarm(object_path(cluster.var, object_id)) is not None
        owner.kill9()  # heartbeats stop too: the alarm must fire on the next owner

        after = await asyncio.to_thread(twin_of, front, "valve")
        assert {k: after[k] for k in PERSISTENT} == {k: before[k] for k in PERSISTENT}
        assert cluster.lease_of(object_id.key)[0] == cluster.host_id(front)
        offline, at = await recv_until(watch, "offline", timeout + 10)
        assert at - last_message >= timeout - 0.3
        assert offline["connection"]["state"] == "disconnected"
        assert (await asyncio.to_thread(twin_of, front, "valve"))["connection"][
            "state"
        ] == "disconnected"
        # The device's socket survived the owner's death; its next heartbeat is heard.
        await device.send(json.dumps({"type": "heartbeat"}))
        await recv_until(watch, "online", 10)
