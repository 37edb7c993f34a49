"""Hostile input found by probing the running device twins: lone surrogates, numbers
``str.isdigit`` accepts but ``int`` does not, integers too large for a float, reports
without a state, and uppercase 64-hex ids. Each is a 400/404 (or a ``rejected`` frame)
and leaves the twin as it was."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests._servers import ServerProcess, http
from tests.iot.conftest import in_own_loop, origin, recv_json, ws_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LONE_SURROGATE = "\ud800"  # json.dumps sends it as the escape "\ud800"
UPPER_HEX = "AB" * 32


def api(server: ServerProcess, method: str, path: str, body=None):
    return http(method, f"{server.url}/api/devices/{path}", body, timeout=30)


def assert_error(result, status: int, code: str | None = None) -> None:
    assert result.status == status, result
    assert isinstance(result.body, dict) and result.body["message"], result
    assert code is None or result.body["error"] == code, result


def test_lone_surrogates_in_twin_writes_are_400_and_the_twin_is_unchanged(iot_server):
    s = iot_server
    assert api(s, "PATCH", "sur/twin", {"state": {"desired": {"a": 1}}}).status == 200
    for state in (
        {"desired": {"a": LONE_SURROGATE}},
        {"desired": {LONE_SURROGATE: 1}},
        {"reported": {"deep": {"list": ["ok", "x" + LONE_SURROGATE]}}},
        {"reported": {"deep": {"k" + LONE_SURROGATE: True}}},
    ):
        assert_error(api(s, "PATCH", "sur/twin", {"state": state}), 400, "bad_request")
    token = {"state": {"desired": {"a": 2}}, "client_token": LONE_SURROGATE}
    assert_error(api(s, "PATCH", "sur/twin", token), 400, "bad_request")
    assert_error(api(s, "POST", "", {"desired": {"a": LONE_SURROGATE}}), 400, "bad_request")
    assert_error(api(s, "POST", "", {"desired": {LONE_SURROGATE: 1}}), 400, "bad_request")
    twin = api(s, "GET", "sur/twin")
    assert twin.status == 200 and twin.body["version"] == 1, twin
    assert twin.body["state"]["desired"] == {"a": 1}


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",  # "²": isdigit() is true, int() fails
        "limit=%D9%A3",  # an Arabic-Indic three: int() would take it
        "limit=0",
        "limit=10001",
        "limit=1e3",
        "since=%C2%B2",
        "since=%D9%A3",
        "until=1e999",
        "since=nan",
        "until=-inf",
        "since=1_000",
        "since=%201",
    ],
)
def test_telemetry_query_numbers_are_plain_ascii_or_400(iot_server, query):
    result = api(iot_server, "GET", f"qnum/telemetry?metric=t&{query}")
    assert_error(result, 400, "bad_request")


def test_telemetry_query_accepts_ordinary_numbers(iot_server):
    s = iot_server
    ts = float(int(time.time()) - 100)  # within the retention age
    posted = api(s, "POST", "qnum-ok/telemetry", {"metrics": {"t": 1.5}, "ts": ts})
    assert posted.status == 202, posted
    for query in ("limit=5", f"since={ts - 0.5}&until={int(ts)}", "since=1e3", "until=.5E10"):
        result = api(s, "GET", f"qnum-ok/telemetry?metric=t&{query}")
        assert result.status == 200 and result.body["points"] == [[ts, 1.5]], (query, result)


def test_integers_too_large_for_a_float_are_400_in_telemetry(iot_server):
    s = iot_server
    huge = 10**400
    assert_error(api(s, "POST", "bigint/telemetry", {"metrics": {"t": huge}}), 400)
    assert_error(api(s, "POST", "bigint/telemetry", {"metrics": {"t": 1}, "ts": huge}), 400)
    batch = {"points": [{"metrics": {"t": 1}}, {"metrics": {"t": -huge}}]}
    assert_error(api(s, "POST", "bigint/telemetry", batch), 400)
    assert api(s, "POST", "bigint/telemetry", {"metrics": {"t": 2}}).status == 202


@in_own_loop
async def test_device_reports_without_a_state_or_with_bad_text_are_rejected(iot_server):
    s = iot_server
    async with connect(ws_url(s, "rep"), origin=origin(s)) as device:
        assert (await recv_json(device))["type"] == "twin"
        await device.send(json.dumps({"type": "report", "state": {"on": True, "rpm": 900}}))
        assert await recv_json(device) == {"type": "accepted", "version": 1}
        for report in (
            {"type": "report"},
            {"type": "report", "state": None},
            {"type": "report", "state": "on"},
            {"type": "report", "state": {"on": LONE_SURROGATE}},
            {"type": "report", "state": {LONE_SURROGATE: 1}},
            {"type": "report", "state": {"on": False}, "client_token": LONE_SURROGATE},
        ):
            await device.send(json.dumps(report))
            reply = await recv_json(device)
            assert reply["type"] == "rejected" and reply["version"] == 1, (report, reply)
            assert reply["error"] == "bad_request" and reply["message"], (report, reply)
        twin = (await asyncio.to_thread(api, s, "GET", "rep/twin")).body
        assert twin["version"] == 1 and twin["state"]["reported"] == {"on": True, "rpm": 900}
        # A telemetry frame with an integer too large for a float gets an error, too.
        await device.send(json.dumps({"type": "telemetry", "metrics": {"t": 10**400}}))
        assert (await recv_json(device))["type"] == "error"


@in_own_loop
async def test_uppercase_64_hex_ids_name_no_device(iot_server):
    s = iot_server
    for device_id in (UPPER_HEX, "Ab" * 32):
        assert_error(api(s, "GET", f"{device_id}/twin"), 404, "not_found")
        patched = api(s, "PATCH", f"{device_id}/twin", {"state": {"desired": {"a": 1}}})
        assert_error(patched, 404, "not_found")
        assert_error(api(s, "POST", f"{device_id}/telemetry", {"metrics": {"t": 1}}), 404)
        assert_error(api(s, "POST", "", {"device_id": device_id}), 400, "bad_request")
        page = await asyncio.to_thread(http, "GET", f"{s.url}/devices/{device_id}/")
        assert page.status == 404
        for watch in (False, True):
            with pytest.raises(InvalidStatus):
                async with connect(ws_url(s, device_id, watch), origin=origin(s)):
                    pass
    listed = api(s, "GET", "").body["devices"]
    assert not [d for d in listed if d["device_id"].lower() == UPPER_HEX.lower()], listed
