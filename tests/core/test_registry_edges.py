"""The host registry and the owner's side of remote calls at their edges (issue 15,
findings 6 and 15), against a real redis-server where Redis is involved."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from durable_core.hosts import HostRegistry
from durable_core.registry import get_namespace
from durable_core.router import get_router
from durable_core.testing import object_host
from durable_core.testing.redis_server import RedisServer
from tests import objects  # noqa: F401
from tests.core.transport_helpers import RecordingTransport, call_message

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    try:
        yield server
    finally:
        server.stop()


async def test_no_front_is_declared_dead_in_the_grace_after_a_redis_restart(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
        # A front whose heartbeat key is gone (Redis restarted and lost it), with sockets.
        entry = {"id": "front:1:a", "channel": "c", "heartbeat": time.time(), "started": 0}
        await client.hset("durable:hosts", "front:1:a", json.dumps(entry))
        await client.sadd("durable:front:front:1:a:objects", "tests.Sockets:" + "ab" * 32)
        registry = HostRegistry(client, "durable", {"id": "me:2:b"}, 1.0)
        registry._run_id = "the run before the restart"  # it saw Redis before
        assert await registry.claim_dead_front_objects() == []
        assert await client.scard("durable:front:front:1:a:objects") == 1  # nothing taken
    finally:
        await client.aclose()


@pytest.mark.django_db(transaction=True)
async def test_a_remote_call_the_owner_cannot_serve_is_answered_and_forgotten(
    tmp_path, monkeypatch
):

    async with object_host(tmp_path / "o", CALL_TIMEOUT=0.2, TURN_TIMEOUT=0.2) as host:
        host.transport = transport = RecordingTransport()

        async def never(self, object_id, event):
            await asyncio.Event().wait()

        monkeypatch.setattr(type(host), "deliver", never)
        stub = get_namespace("tests.Counter").get_by_name("stuck")
        router = get_router()
        await router.handle_message(call_message(stub, "increment", "k"))
        for _ in range(100):
            if transport.sent:
                break
            await asyncio.sleep(0.02)
        assert [m["body"]["type"] for m in transport.sent] == ["CallTimeout"]
        assert not router._serving_keys
