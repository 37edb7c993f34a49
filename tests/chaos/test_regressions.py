"""Regressions found by the chaos and hostile-input tests, one per bug, in-process (no
server needed). A bug still open is a strict xfail: the day it is fixed, the test
passes, pytest fails it, and the marker (and the fuzz test's matching entry in
``KNOWN_BUGS``) must go."""

from __future__ import annotations

import pytest

# JSON nested 100,000 deep: json.loads raises RecursionError, which is not a ValueError.
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_ratelimit_post_with_deeply_nested_json_is_a_400(client, body):
    """Found by the REST fuzzing: json.loads raised RecursionError (not a ValueError) and
    the request ended in 500 internal; fixed in apps/ratelimit/api.py (8688218)."""
    response = client.post(
        "/api/ratelimit/demo/fuzz-key", data=body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_demo_counter_post_with_deeply_nested_json_is_a_400(client, body):
    """Found by the REST fuzzing, the same RecursionError in config/views.py; fixed at
    the project level (7e609e6)."""
    response = client.post("/api/demo/counter/fuzz", data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]


async def test_a_live_host_is_not_declared_dead_right_after_redis_restarted_empty(tmp_path):
    """Found by the chaos run: Redis restarted with empty data wipes every heartbeat key,
    and until a host's own next heartbeat noticed the new run_id (up to one period), its
    ``is_dead`` called a live host dead. Activations then took over live owners' leases
    at once, and the owners took them back: one object changed hands 17 times in 0.7 s,
    each handover a refused commit (safe, thanks to the fence, but the grace DESIGN §4
    promises after a Redis restart did not hold). A missing heartbeat right after a
    restart must not count as a death."""
    import redis.asyncio as aioredis

    from durable_core.hosts import HostRegistry
    from durable_core.testing.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    client = aioredis.Redis.from_url(server.url)
    try:
        # Ids of another node, so that only heartbeats (not pids) tell liveness.
        owner = HostRegistry(client, "durable", {"id": "node-b:101:aa"}, interval=1.0)
        judge = HostRegistry(client, "durable", {"id": "node-b:102:bb"}, interval=1.0)
        for registry in (owner, judge):
            registry._describe = dict
            await registry.beat()
        assert not await judge.is_dead(owner.host_id)
        server.restart_empty()
        await client.connection_pool.disconnect()
        assert not await judge.is_dead(owner.host_id), "a live host declared dead"
    finally:
        await client.aclose()
        server.stop()


def test_two_hosts_handed_the_same_token_before_the_file_exists_only_the_first_writes(
    tmp_path,
):
    """Found by the 3-minute chaos run's audit ("token 1 used by processes [8396,
    21163]"): a register was first activated with token 1 and only read (no file yet),
    then Redis restarted empty and another host was handed token 1 again. Activation of
    an object without a file does not touch storage, and the first write of an
    activation claimed the fence only when it made the file; on a file another holder of
    the same token had made meanwhile it only checked stored == token, which passes. So
    both hosts could commit under token 1 (DESIGN §4: "two hosts can be handed the same
    token, and only the first may activate"). Every activation must claim strictly once,
    whether at activation or at its first write."""
    from durable_core.exceptions import StaleOwner
    from durable_core.storage import ObjectStorage
    from durable_core.storage.database import ObjectDatabase

    path = tmp_path / "ab" / "obj.sqlite3"
    first = ObjectDatabase(path, token=1)  # activated before the restart: no file
    second = ObjectDatabase(path, token=1)  # the same token again after it: still no file
    try:
        for db, value in ((first, "first"), (second, "second")):
            db.begin_turn()
            ok = False
            try:
                if db is second:
                    with pytest.raises(StaleOwner):
                        ObjectStorage(db).put("k", value)
                else:
                    ObjectStorage(db).put("k", value)
                    ok = True
            finally:
                db.end_turn(ok=ok)
                db.commit() if ok else db.rollback()
        assert ObjectStorage(first).get("k") == "first"
    finally:
        first.close()
        second.close()


def test_a_holder_of_the_same_token_that_never_wrote_cannot_answer_from_the_new_file(
    tmp_path,
):
    """The read side of the same hole: the second holder of token 1 never wrote, and
    the file the first holder made carries fence 1; the output gate's fence check of a
    read-only segment (stored == token) passed, so it could answer from its own state."""
    from durable_core.exceptions import StaleOwner
    from durable_core.storage import ObjectStorage
    from durable_core.storage.database import ObjectDatabase

    path = tmp_path / "ab" / "obj.sqlite3"
    first = ObjectDatabase(path, token=1)
    second = ObjectDatabase(path, token=1)
    try:
        first.begin_turn()
        ObjectStorage(first).put("k", "first")
        first.end_turn(ok=True)
        first.commit()
        first.check_fence()  # the claimer answers
        with pytest.raises(StaleOwner):
            second.check_fence()
    finally:
        first.close()
        second.close()
