"""The runtime's Redis client waits for a free pooled connection under a burst instead
of failing ("Too many connections" broke 1,000 sockets connecting at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from durable_core.host import make_redis_client
from durable_core.testing.redis_server import RedisServer


async def test_a_burst_larger_than_the_pool_waits_for_connections(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = make_redis_client(server.url)  # REDIS_MAX_CONNECTIONS: 128
        try:
            # 300 commands at once, each holding a connection for 50 ms.
            replies = await asyncio.wait_for(
                asyncio.gather(*(client.blpop([f"none{i}"], timeout=0.05) for i in range(300))),
                timeout=20,
            )
            assert replies == [None] * 300
            assert len(client.connection_pool._in_use_connections) == 0
        finally:
            await client.aclose()
    finally:
        server.stop()
