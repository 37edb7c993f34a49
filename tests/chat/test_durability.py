"""Message ids strictly increase and nothing is lost across an eviction (hibernation) and
across a ``kill -9`` of the room's owner in cluster mode (CONTRACT § Chat, DESIGN §9).

Real parts only: ``manage.py runserver`` processes of the demo project, a private
``redis-server`` for the cluster, real WebSocket clients. That an eviction happened is
read from the room's own SQLite file: each activation stores a higher fencing token.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from durable_core.hosts import parse_host_id
from tests._servers import ServerProcess
from tests.chat.conftest import SETTINGS, ChatClient, clients, running_server
from tests.cluster.conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

NAMESPACE = "chat.Room"


def stored_fence(var: Path) -> int:
    """The fence stored in the only chat room file under ``var`` (read-only)."""
    files = list((var / "objects" / NAMESPACE).glob("*/*.sqlite3"))
    assert len(files) == 1, files
    conn = sqlite3.connect(f"file:{files[0]}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT value FROM _do_meta WHERE key='fence'").fetchone()[0])
    finally:
        conn.close()


async def say_until_acked(client: ChatClient, text: str, cmid: str, deadline: float) -> int:
    """Send until acked, resending with the same client_msg_id (what the UI does after a
    failure): the room stores it once whatever number of copies arrive."""
    while True:
        await client.send({"type": "send", "text": text, "client_msg_id": cmid})
        try:
            return (await client.expect("ack", 3, where=lambda f: f["client_msg_id"] == cmid))["id"]
        except AssertionError:
            if time.monotonic() > deadline or client.closed.is_set():
                raise


async def test_ids_keep_increasing_across_evictions_and_sockets_stay_joined(tmp_path):
    with running_server(tmp_path, {"CHAT_RATE_LIMIT": "0", "DURABLE_IDLE_TIMEOUT": "1"}) as server:
        var = tmp_path / "var"
        async with clients(ChatClient.join(server, "evicted", "ann")) as (ann,):
            ids = [await ann.say(f"before {i}", f"b{i}") for i in range(5)]
            fence = stored_fence(var)
            evictions = 0
            deadline = time.monotonic() + 30
            while evictions < 2:  # two evictions, each seen as a new activation
                assert time.monotonic() < deadline, f"no eviction seen\n{server.output()}"
                await asyncio.sleep(1.6)  # idle timeout 1 s, checked every 0.5 s
                ids.append(await ann.say(f"after {len(ids)}", f"a{len(ids)}"))
                now = stored_fence(var)
                if now > fence:
                    evictions, fence = evictions + 1, now
            assert ids == list(range(1, len(ids) + 1)), ids  # strictly increasing, no gap
            # ann's socket lived through both hibernations: still joined, still served.
            assert [m["id"] for m in ann.frames_of("msg")] == ids
            info = server.get("/api/chat/rooms/evicted").body
            assert info == {"room": "evicted", "online": ["ann"], "messages": len(ids)}
            async with clients(ChatClient.join(server, "evicted", "bob")) as (bob,):
                assert [m["id"] for m in bob.backlog] == ids and bob.roster["users"] == ["ann"]


def start_hosts(cluster: Cluster, count: int) -> list[ServerProcess]:
    """``count`` cluster servers of the demo project (its chat routes) on one Redis."""
    made = []
    for _ in range(count):
        server = ServerProcess(
            cluster.var,
            cluster.tmp_path / f"host{len(cluster.servers)}.log",
            settings=SETTINGS,
            env={"DURABLE_REDIS_URL": cluster.redis_server.url, "CHAT_RATE_LIMIT": "0"},
        )
        cluster.servers.append(server)
        made.append(server.start())
    for server in made:
        server.wait_ready(30)
    return made


async def test_kill_9_of_the_owner_ids_keep_increasing_and_resume_gets_the_rest(
    cluster: Cluster,
):
    owner, front = start_hosts(cluster, 2)
    room = "failover"
    key = cluster.object_id(room, NAMESPACE).key
    first = owner.post(f"/api/chat/rooms/{room}/messages", {"name": "api", "text": "first"})
    assert first.status == 201, f"{first}\n{cluster.logs()}"
    holder = cluster.lease_of(key)
    assert holder is not None and parse_host_id(holder[0])[1] == owner.pid, holder

    async with clients(
        ChatClient.join(front, room, "ann"),  # survives: her front is not the owner
        ChatClient.join(owner, room, "bob"),  # dies with the owner
    ) as (ann, bob):
        before = [first.body["id"]] + [await ann.say(f"before {i}", f"b{i}") for i in range(5)]
        await bob.expect("msg", where=lambda f: f["id"] == before[-1])
        seen = [m["id"] for m in bob.frames_of("msg")]  # backlog included
        assert seen == before, seen
        bob_last = seen[-1]

        owner.kill9()
        assert await asyncio.wait_for(bob.closed.wait(), 10) is True
        deadline = time.monotonic() + 40
        after = [await say_until_acked(ann, f"after {i}", f"a{i}", deadline) for i in range(5)]
        assert before + after == sorted(before + after) and len(set(before + after)) == 11
        assert min(after) > max(before)
        # The new owner is the surviving host, with a higher token.
        new_holder = cluster.lease_of(key)
        assert new_holder is not None and parse_host_id(new_holder[0])[1] == front.pid
        assert new_holder[1] > holder[1]
        # bob's front died with him: ann is told he left.
        assert await ann.expect("left", 20) == {"type": "left", "name": "bob"}

        async with clients(ChatClient.join(front, room, "bob", since=bob_last)) as (again,):
            assert [m["id"] for m in again.backlog] == after
            assert [m["text"] for m in again.backlog] == [f"after {i}" for i in range(5)]
    info = front.get(f"/api/chat/rooms/{room}").body
    assert info["messages"] == 11, info  # resent copies were stored once
