"""CREATE_RATE_LIMIT (issue 16 §9, CONTRACT): one client creates at most n new objects per
period through the public routes (devices, documents, rate-limit keys, sockets on new
names); requests to objects that exist cost nothing; every client has its own budget;
``0`` disables it. A real server with ``CREATE_RATE_LIMIT=3/60`` and 127.0.0.1 trusted
as a proxy, so that ``X-Forwarded-For`` gives each test its own client address."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from django.test import override_settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.ratelimit.creation import check_create
from durable_core.registry import get_namespace
from tests._servers import ServerProcess, http, running_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

_addresses = (f"198.51.100.{i}" for i in itertools.count(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"CREATE_RATE_LIMIT": "3/60", "TRUSTED_PROXIES": "127.0.0.1"}
    with running_server(tmp_path_factory.mktemp("create-limit"), env) as s:
        yield s


class Client:
    """Requests from one client address (through the trusted proxy)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.address = next(_addresses)

    def send(self, method: str, path: str, body: object = None):
        headers = {"X-Forwarded-For": self.address}
        return http(method, self.server.url + path, body, headers=headers)


def _assert_refused(result) -> None:
    assert result.status == 429, result
    assert result.body["error"] == "rate_limited" and result.body["retry_after"] > 0, result


def test_new_rate_limit_keys_are_limited_and_existing_ones_are_free(server):
    client = Client(server)
    for i in range(3):
        assert client.send("POST", f"/api/ratelimit/api/key-{i}").status == 200
    _assert_refused(client.send("POST", "/api/ratelimit/api/key-3"))
    # Keys that exist cost no creation: spent as often as their own policy allows.
    for _ in range(5):
        assert client.send("POST", "/api/ratelimit/api/key-0").status == 200
    # Another client has a budget of its own.
    assert Client(server).send("POST", "/api/ratelimit/api/key-3").status == 200


def test_new_devices_are_limited_by_patch_telemetry_and_create(server):
    client = Client(server)
    desired = {"state": {"desired": {"on": True}}}
    assert client.send("PATCH", "/api/devices/dev-a/twin", desired).status == 200
    assert client.send("POST", "/api/devices/dev-b/telemetry", {"metrics": {"t": 1}}).status == 202
    assert client.send("POST", "/api/devices/", {"device_id": "dev-c"}).status == 201
    _assert_refused(client.send("PATCH", "/api/devices/dev-d/twin", desired))
    _assert_refused(client.send("POST", "/api/devices/", {}))
    _assert_refused(client.send("POST", "/api/devices/dev-e/telemetry", {"metrics": {"t": 1}}))
    # The devices that exist still take writes, and reads never count.
    for _ in range(5):
        assert client.send("PATCH", "/api/devices/dev-a/twin", desired).status == 200
    assert client.send("GET", "/api/devices/dev-zz/twin").status == 404


def test_new_documents_are_limited_over_rest_and_websocket(server):
    client = Client(server)
    for name in ("doc-a", "doc-b", "doc-c"):
        assert (
            client.send("POST", f"/api/documents/{name}/edits", {"index": 0, "insert": "x"}).status
            == 200
        )
    _assert_refused(client.send("POST", "/api/documents/doc-d/edits", {"index": 0, "insert": "x"}))
    assert (
        client.send("POST", "/api/documents/doc-a/edits", {"index": 0, "insert": "y"}).status == 200
    )

    assert asyncio.run(_first_frame(server, client, "docs/doc-a")) is None  # exists
    assert asyncio.run(_first_frame(server, client, "docs/doc-new")) == 1013  # new, over


def test_a_device_socket_on_a_new_device_is_closed_with_1013_past_the_limit(server):
    client = Client(server)
    for name in ("ws-a", "ws-b", "ws-c"):
        assert asyncio.run(_first_frame(server, client, f"devices/{name}")) is None
    assert asyncio.run(_first_frame(server, client, "devices/ws-d")) == 1013
    assert asyncio.run(_first_frame(server, client, "devices/ws-a")) is None  # exists


async def _first_frame(server: ServerProcess, client: Client, route: str) -> int | None:
    """Connect to ``/ws/<route>/``: None when a first frame came, else the close code."""
    url = f"ws://127.0.0.1:{server.port}/ws/{route}/"
    headers = {"X-Forwarded-For": client.address}
    async with connect(url, origin=server.url, additional_headers=headers) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else 1006
        return None


@override_settings(RATELIMIT_POLICIES={"api": {"limit": 1, "period": 60}})
async def test_no_create_policy_means_no_limit_and_no_lookup():
    """``CREATE_RATE_LIMIT=0`` leaves no ``create`` policy: nothing is checked (no query,
    no limiter call: this test has no database and no host)."""
    object_id = get_namespace("iot.Device").new_unique_id()
    for _ in range(10):
        assert await check_create("192.0.2.1", object_id) is None
