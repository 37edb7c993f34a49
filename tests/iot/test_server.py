"""The device twin contract against a real embedded server (``manage.py runserver``):
REST status codes and limits, optimistic locking, 500 concurrent PATCHes from several
OS processes, the delta round trip over a real device WebSocket, reconnection to the
final state, the heartbeat timeout (2 s) on the watch socket, the device list, and
10,000 telemetry points through REST with the retention bound checked in the file."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests._servers import ServerProcess, http
from tests.iot import _load
from tests.iot.conftest import HEARTBEAT_TIMEOUT, in_own_loop, origin, recv_json, recv_until, ws_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def api(server: ServerProcess, method: str, path: str, body=None):
    return http(method, f"{server.url}/api/devices/{path}", body, timeout=30)


def raw(server: ServerProcess, method: str, path: str, data: bytes):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/api/devices/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def nested(levels: int) -> dict:
    value: object = "x"
    for _ in range(levels):
        value = {"k": value}
    return value  # type: ignore[return-value]


# -- REST -----------------------------------------------------------------------------------


def test_rest_contract_codes_and_limits(iot_server):
    s = iot_server
    assert api(s, "GET", "t1/twin").status == 404
    assert api(s, "GET", "bad!id/twin").status == 404
    assert api(s, "GET", "ab" * 32 + "/twin").status == 404  # 64 hex but no valid ID
    first = api(
        s,
        "PATCH",
        "t1/twin",
        {"state": {"desired": {"engine": {"rpm": 900}, "color": "RED"}}, "client_token": "c-1"},
    )
    assert first.status == 200, first
    doc = first.body
    assert doc["version"] == 1 and doc["client_token"] == "c-1" and doc["device_id"] == "t1"
    aws = api(s, "PATCH", "t9/twin", {"state": {"desired": {"a": 1}}, "clientToken": "c-2"})
    assert aws.status == 200 and aws.body["clientToken"] == "c-2"
    assert "client_token" not in aws.body
    both = {"state": {"desired": {"a": 2}}, "clientToken": "x", "client_token": "y"}
    assert api(s, "PATCH", "t9/twin", both).status == 400
    assert doc["state"]["delta"] == {"engine": {"rpm": 900}, "color": "RED"}
    assert set(doc["metadata"]["desired"]) == {"engine", "color"}
    assert doc["metadata"]["desired"]["engine"]["rpm"]["timestamp"] == doc["timestamp"]

    # null deletes the field and its metadata
    gone = api(s, "PATCH", "t1/twin", {"state": {"desired": {"engine": None}}, "version": 1})
    assert gone.status == 200 and gone.body["version"] == 2
    assert "engine" not in gone.body["state"]["desired"]
    assert "engine" not in gone.body["metadata"]["desired"]

    # limits: depth 7, 9 KiB, a 65-byte client token, bad JSON; none of them is a write
    assert api(s, "PATCH", "t1/twin", {"state": {"desired": nested(6)}}).status == 200  # v3
    deep = api(s, "PATCH", "t1/twin", {"state": {"desired": nested(7)}})
    assert deep.status == 400 and deep.body["error"] == "bad_request"
    big = api(s, "PATCH", "t1/twin", {"state": {"reported": {"blob": "x" * 9 * 1024}}})
    assert big.status == 413 and big.body["error"] == "too_large"
    token = api(s, "PATCH", "t1/twin", {"state": {"desired": {}}, "client_token": "t" * 65})
    assert token.status == 400
    for data in (b"{bad", b"[" * 50_000, b'{"state": 1}', b"null"):
        status, body = raw(s, "PATCH", "t1/twin", data)
        assert status == 400 and body["error"] == "bad_request", (data[:10], status, body)
    status, body = raw(s, "PATCH", "t1/twin", b" " * 70_000)
    assert status == 413
    assert api(s, "GET", "t1/twin").body["version"] == 3

    # optimistic locking: a stale version is a 409 with the current version
    stale = api(
        s, "PATCH", "t1/twin", {"state": {"desired": {"a": 1}}, "version": 1, "client_token": "k"}
    )
    assert stale.status == 409
    assert stale.body["error"] == "version_conflict" and stale.body["version"] == 3
    assert stale.body["client_token"] == "k" and "message" in stale.body

    # DELETE → 204 (again: still 204, it is idempotent); the delete takes version 4, so
    # a PATCH made from version 3 is stale, and a later write continues the count
    assert api(s, "DELETE", "t1/twin").status == 204
    assert api(s, "GET", "t1/twin").status == 404
    assert api(s, "DELETE", "t1/twin").status == 204
    late = api(s, "PATCH", "t1/twin", {"state": {"desired": {"a": 1}}, "version": 3})
    assert late.status == 409 and late.body["version"] == 4
    again = api(s, "PATCH", "t1/twin", {"state": {"reported": {"on": True}}})
    assert again.status == 200 and again.body["version"] == 5
    assert again.body["state"]["desired"] == {} and again.body["metadata"]["desired"] == {}

    # create: 201 with a new twin; the same id again is 409; no id → a new 64-hex id
    made = api(s, "POST", "", {"device_id": "made-1", "desired": {"mode": "eco"}})
    assert made.status == 201 and made.body["version"] == 1
    assert made.body["state"]["delta"] == {"mode": "eco"}
    assert api(s, "POST", "", {"device_id": "made-1"}).status == 409
    fresh = api(s, "POST", "", {})
    assert fresh.status == 201 and len(fresh.body["device_id"]) == 64
    assert api(s, "GET", fresh.body["device_id"] + "/twin").status == 200


def test_two_writers_with_the_same_version_one_wins(iot_server):
    s = iot_server
    base = api(s, "PATCH", "race/twin", {"state": {"desired": {"n": 0}}}).body["version"]
    for round_ in range(5):
        barrier = threading.Barrier(2)
        results = []

        def write(name, version=base + round_, barrier=barrier, results=results):
            barrier.wait(5)
            body = {"state": {"desired": {"n": name}}, "version": version}
            results.append(api(s, "PATCH", "race/twin", body))

        threads = [threading.Thread(target=write, args=(w,)) for w in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(r.status for r in results)
        assert statuses == [200, 409], results
        loser = next(r for r in results if r.status == 409)
        assert loser.body == {
            "error": "version_conflict",
            "message": loser.body["message"],
            "version": base + round_ + 1,
        }


def test_500_concurrent_patches_from_processes_leave_no_gap(iot_server):
    s = iot_server
    initial = api(s, "PATCH", "load/twin", {"state": {"desired": {"go": True}}}).body["version"]
    url = f"{s.url}/api/devices/load/twin"
    workers, per_worker = 4, 125
    ctx = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with ctx.Pool(workers) as pool:
        runs = [pool.apply_async(_load.patch_many, (url, w, per_worker, 8)) for w in range(workers)]
        results = [item for run in runs for item in run.get(timeout=90)]
    elapsed = time.monotonic() - started
    assert len(results) == 500
    assert [r for r in results if r[0] != 200 or not r[2]] == []
    versions = sorted(r[1] for r in results)
    assert versions == list(range(initial + 1, initial + 501))  # each once: no gap, no repeat
    final = api(s, "GET", "load/twin").body
    assert final["version"] == initial + 500
    assert final["state"]["reported"] == {
        f"w{w}": final["state"]["reported"][f"w{w}"] for w in range(workers)
    }
    print(f"500 PATCHes from {workers} processes in {elapsed:.2f}s ({500 / elapsed:.0f}/s)")


def test_device_list_comes_from_records_with_state(iot_server):
    s = iot_server
    api(s, "PATCH", "listed-1/twin", {"state": {"desired": {"x": 1}}})
    deadline = time.monotonic() + 5
    while True:
        listed = {d["device_id"]: d for d in api(s, "GET", "").body["devices"]}
        if listed.get("listed-1", {}).get("version") == 1:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.1)
    assert listed["listed-1"]["connection"]["state"] == "disconnected"
    assert set(listed["listed-1"]) >= {"device_id", "version", "connection"}


# -- WebSockets ----------------------------------------------------------------------------


@in_own_loop
async def test_delta_round_trip_over_the_device_socket(iot_server):
    s = iot_server
    async with connect(ws_url(s, "lamp"), origin=origin(s)) as device:
        hello = await recv_json(device)
        assert hello["type"] == "twin" and hello["twin"]["version"] == 0
        await device.send(json.dumps({"type": "report", "state": {"color": "GREEN"}}))
        assert await recv_json(device) == {"type": "accepted", "version": 1}

        changed = await asyncio.to_thread(
            api, s, "PATCH", "lamp/twin", {"state": {"desired": {"color": "RED"}}}
        )
        assert changed.status == 200 and changed.body["state"]["delta"] == {"color": "RED"}
        delta = await recv_json(device)
        assert delta["type"] == "delta" and delta["state"] == {"color": "RED"}
        assert delta["version"] == changed.body["version"] == 2 and delta["timestamp"]

        await device.send(
            json.dumps({"type": "report", "state": {"color": "RED"}, "client_token": "r"})
        )
        assert await recv_json(device) == {"type": "accepted", "version": 3, "client_token": "r"}
        twin = (await asyncio.to_thread(api, s, "GET", "lamp/twin")).body
        assert twin["state"]["delta"] == {} and twin["version"] == 3
        # No delta follows a report; a desired write equal to reported pushes none either.
        same = await asyncio.to_thread(
            api, s, "PATCH", "lamp/twin", {"state": {"desired": {"color": "RED"}}}
        )
        assert same.status == 200 and same.body["state"]["delta"] == {}
        with pytest.raises(TimeoutError):
            await recv_json(device, timeout=1.0)

        # A stale report is rejected with the current version; bad frames get an error.
        await device.send(json.dumps({"type": "report", "state": {"x": 1}, "version": 1}))
        assert await recv_json(device) == {
            "type": "rejected",
            "error": "version_conflict",
            "version": 4,
            "message": "version 1 is not current",
        }
        await device.send("not json")
        assert (await recv_json(device))["type"] == "error"

    # Offline, the device misses two desired changes; on reconnect it gets the final state.
    for color in ("BLUE", "YELLOW"):
        assert (
            await asyncio.to_thread(
                api, s, "PATCH", "lamp/twin", {"state": {"desired": {"color": color}}}
            )
        ).status == 200
    async with connect(ws_url(s, "lamp"), origin=origin(s)) as device:
        hello = await recv_json(device)
        assert hello["twin"]["version"] == 6
        assert hello["twin"]["state"]["delta"] == {"color": "YELLOW"}
        with pytest.raises(TimeoutError):  # no replay of the missed, older deltas
            await recv_json(device, timeout=0.5)
        # AWS's spelling of the client token is accepted and echoed as sent.
        report = {"type": "report", "state": {"color": "YELLOW"}, "clientToken": "aws"}
        await device.send(json.dumps(report))
        assert await recv_json(device) == {"type": "accepted", "version": 7, "clientToken": "aws"}


@in_own_loop
async def test_devices_named_like_a_route_suffix_connect_as_devices(iot_server):
    """The route, not the id's look, gives a socket its role (issue 16 §7): a device
    named ``watch`` reports over ``/ws/devices/watch/`` and its dashboard watches it."""
    s = iot_server
    async with (
        connect(ws_url(s, "watch", watch=True), origin=origin(s)) as dashboard,
        connect(ws_url(s, "watch"), origin=origin(s)) as device,
    ):
        assert (await recv_json(dashboard))["type"] == "twin"
        assert (await recv_json(device))["type"] == "twin"
        await device.send(json.dumps({"type": "report", "state": {"t": 1}}))
        assert await recv_json(device) == {"type": "accepted", "version": 1}
        changed, _ = await recv_until(dashboard, "twin", 5)
        assert changed["twin"]["state"]["reported"] == {"t": 1}
        twin = (await asyncio.to_thread(api, s, "GET", "watch/twin")).body
        assert twin["connection"]["state"] == "connected"


@in_own_loop
async def test_heartbeat_timeout_marks_offline_and_heartbeats_bring_it_back(iot_server):
    s = iot_server
    await asyncio.to_thread(api, s, "PATCH", "hb/twin", {"state": {"desired": {"on": True}}})
    async with (
        connect(ws_url(s, "hb", watch=True), origin=origin(s)) as watch,
        connect(ws_url(s, "hb"), origin=origin(s)) as device,
    ):
        assert (await recv_json(watch))["type"] == "twin"
        assert (await recv_json(watch))["type"] == "offline"  # the state when watching began
        await recv_json(device)
        await recv_until(watch, "online", 5)
        for _ in range(6):  # 1.5 s of heartbeats every 0.25 s: stays online
            await device.send(json.dumps({"type": "heartbeat"}))
            await asyncio.sleep(0.25)
        last_beat = time.monotonic()
        offline, at = await recv_until(watch, "offline", 6)
        silent = at - last_beat
        assert HEARTBEAT_TIMEOUT - 0.3 <= silent <= HEARTBEAT_TIMEOUT + 1.0, silent
        assert offline["connection"]["state"] == "disconnected"
        twin = (await asyncio.to_thread(api, s, "GET", "hb/twin")).body
        assert twin["connection"]["state"] == "disconnected"

        await device.send(json.dumps({"type": "heartbeat"}))
        online, _ = await recv_until(watch, "online", 3)
        assert online["connection"]["state"] == "connected"
        twin = (await asyncio.to_thread(api, s, "GET", "hb/twin")).body
        assert twin["connection"]["state"] == "connected"
    # The device socket closing is a disconnection too.
    deadline = time.monotonic() + 5
    while (await asyncio.to_thread(api, s, "GET", "hb/twin")).body["connection"][
        "state"
    ] != "disconnected":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


# -- telemetry -----------------------------------------------------------------------------


def object_file(server: ServerProcess, name: str) -> Path:
    from django.test import override_settings

    from durable_core.ids import ObjectId, reset_id_key_cache

    key = (server.var_dir / "id_key").read_text().strip()
    reset_id_key_cache()
    try:
        with override_settings(DURABLE_OBJECTS={"ID_KEY": key}):
            object_id = ObjectId.from_name("iot.Device", name)
    finally:
        reset_id_key_cache()
    return (
        server.var_dir / "objects" / "iot.Device" / object_id.hex[:2] / f"{object_id.hex}.sqlite3"
    )


def test_ten_thousand_points_over_rest_and_the_retention_bound(iot_server):
    s = iot_server
    now = time.time()
    points = [(now - 20_000 + i * 1.5, float(i % 97)) for i in range(12_000)]
    for start in range(0, 10_000, 1000):
        batch = [{"ts": ts, "metrics": {"temp": v}} for ts, v in points[start : start + 1000]]
        answer = api(s, "POST", "probe/telemetry", {"points": batch})
        assert answer.status == 202 and answer.body["stored"] == 1000
    single = api(s, "POST", "probe-2/telemetry", {"metrics": {"volts": 3.3}})
    assert single.status == 202
    assert api(s, "GET", "probe-2/telemetry?metric=volts").body["points"][0][1] == 3.3

    def query(**params):
        query = "&".join(
            f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
        )
        result = api(s, "GET", f"probe/telemetry?metric=temp&{query}")
        assert result.status == 200, result
        return result.body["points"]

    sent = points[:10_000]
    assert query(limit=10_000) == [list(p) for p in sent]
    for a, b in ((0, 0), (10, 9_000), (4_321, 4_400), (9_999, 9_999), (20, 10)):
        since, until = points[a][0], points[b][0]
        want = [list(p) for p in sent if since <= p[0] <= until]  # both ends inclusive
        assert query(since=since, until=until, limit=10_000) == want
    assert query(since=points[500][0], limit=3) == [list(p) for p in points[500:503]]
    assert api(s, "GET", "probe/telemetry?metric=temp&since=abc").status == 400
    assert api(s, "GET", "probe/telemetry?metric=temp&limit=0").status == 400
    assert api(s, "GET", "probe/telemetry").status == 400
    assert api(s, "POST", "probe/telemetry", {"metrics": {"t": "hot"}}).status == 400
    assert api(s, "POST", "probe/telemetry", {"metrics": {"t": 1}, "ts": "x"}).status == 400

    # 2,000 more: the default bound (10,000 values per device) keeps the newest.
    for start in range(10_000, 12_000, 1000):
        batch = [{"ts": ts, "metrics": {"temp": v}} for ts, v in points[start : start + 1000]]
        assert api(s, "POST", "probe/telemetry", {"points": batch}).status == 202
    path = object_file(s, "probe")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone()[0] == 10_000
    finally:
        conn.close()
    kept = query(limit=10_000)
    assert kept[-1] == list(points[-1]) and kept[0][0] > points[1_999][0]
