"""RedisLeaseStore against a real redis-server (DESIGN §4).

One private redis-server on a free 127.0.0.1 port serves the module; every test starts
from an empty database. Time-based checks use short TTLs and generous margins.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from durable_core.leases.base import Lease, LeaseHolder
from durable_core.leases.redis import RedisLeaseStore, fence_key, lease_key
from durable_core.testing.redis_server import RedisServer

pytestmark = pytest.mark.timeout(30)

KEY = "demo.Counter:" + "ab" * 32
OTHER = "demo.Counter:" + "cd" * 32
PREFIX = "durable"

# Keeps Redis busy for ARGV[1] milliseconds: every command sent meanwhile waits for it.
BUSY_LUA = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  local n = redis.call('TIME')
  if n[1] * 1000000 + n[2] - start > tonumber(ARGV[1]) * 1000 then return 1 end
end
"""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sync_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client for inspecting and breaking Redis; the database starts empty."""
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def make_store(
    redis_server: RedisServer, sync_redis: redis.Redis
) -> AsyncIterator[Callable[..., RedisLeaseStore]]:
    """``make_store(ttl)``: a RedisLeaseStore with its own connection pool."""
    stores: list[RedisLeaseStore] = []

    def make(ttl: float = 5.0) -> RedisLeaseStore:
        store = RedisLeaseStore(aioredis.from_url(redis_server.url), ttl=ttl, prefix=PREFIX)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


def stored_lease(sync_redis: redis.Redis, key: str = KEY) -> str | None:
    value = sync_redis.get(lease_key(PREFIX, key))
    return None if value is None else value.decode()


async def acquired(store: RedisLeaseStore, host: str, key: str = KEY) -> Lease:
    lease = await store.acquire(key, host)
    assert isinstance(lease, Lease), f"{host} did not get {key}: held by {lease}"
    return lease


# -- acquire ---------------------------------------------------------------------------


async def test_acquire_gives_a_higher_token_every_time_the_lease_changes_hands(
    make_store, sync_redis
):
    store = make_store()
    tokens = []
    for host in ("a", "b", "a", "c"):
        lease = await acquired(store, host)
        assert (lease.key, lease.host_id) == (KEY, host)
        assert stored_lease(sync_redis) == f"{host}|{lease.token}"
        tokens.append(lease.token)
        await store.release(lease)
    assert tokens == [1, 2, 3, 4]
    assert int(sync_redis.get(fence_key(PREFIX, KEY))) == 4


async def test_lease_and_fence_keys_share_the_objects_hash_tag(make_store, sync_redis):
    await acquired(make_store(), "a")
    keys = {k.decode() for k in sync_redis.keys("*")}
    assert keys == {f"durable:lease:{{{KEY}}}", f"durable:fence:{{{KEY}}}"}


async def test_a_second_host_is_told_the_holder_and_changes_nothing(make_store, sync_redis):
    a, b = make_store(), make_store()
    lease = await acquired(a, "host-a")
    assert await b.acquire(KEY, "host-b") == LeaseHolder("host-a", lease.token)
    assert stored_lease(sync_redis) == f"host-a|{lease.token}"
    assert int(sync_redis.get(fence_key(PREFIX, KEY))) == lease.token
    assert await b.get_holder(KEY) == LeaseHolder("host-a", lease.token)


async def test_the_holder_acquiring_again_gets_a_new_higher_token(make_store, sync_redis):
    """A leftover lease of this same host (an eviction whose release was lost) is
    replaced: the host never gets its old token back."""
    store = make_store()
    first = await acquired(store, "a")
    second = await acquired(store, "a")
    assert second.token > first.token
    assert stored_lease(sync_redis) == f"a|{second.token}"
    # The old token can no longer renew or release.
    assert await store.renew([first]) == []
    await store.release(first)
    assert stored_lease(sync_redis) == f"a|{second.token}"


async def test_an_expired_lease_goes_to_the_next_host_with_a_higher_token(make_store):
    store = make_store(ttl=0.3)
    lease = await acquired(store, "a")
    assert isinstance(await store.acquire(KEY, "b"), LeaseHolder)
    await asyncio.sleep(0.45)
    assert await store.get_holder(KEY) is None
    taken = await acquired(store, "b")
    assert taken.token > lease.token


# -- renew -------------------------------------------------------------------------------


async def test_renew_extends_only_leases_with_matching_host_and_token(make_store, sync_redis):
    store = make_store(ttl=1.0)
    lease = await acquired(store, "a")
    other = await acquired(store, "a", OTHER)
    await asyncio.sleep(0.5)
    forged = [Lease(KEY, "b", lease.token, 0.0), Lease(KEY, "a", lease.token + 1, 0.0)]
    before = time.monotonic()
    renewed = await store.renew([*forged, lease])
    assert renewed == [lease], "only the real lease is renewed"
    assert sync_redis.pttl(lease_key(PREFIX, KEY)) > 900, "Redis TTL reset to the full TTL"
    assert sync_redis.pttl(lease_key(PREFIX, OTHER)) < 600, "a lease not sent is not renewed"
    assert before + 1.0 <= lease.deadline <= time.monotonic() + 1.0
    assert [f.deadline for f in forged] == [0.0, 0.0], "refused leases keep their deadline"
    assert stored_lease(sync_redis) == f"a|{lease.token}"
    assert await store.renew([other]) == [other]


async def test_renew_of_an_expired_lease_fails_and_recreates_nothing(make_store, sync_redis):
    store = make_store(ttl=0.3)
    lease = await acquired(store, "a")
    deadline = lease.deadline
    await asyncio.sleep(0.45)
    assert await store.renew([lease]) == []
    assert lease.deadline == deadline
    assert stored_lease(sync_redis) is None


async def test_renew_of_a_lease_taken_by_another_host_fails(make_store, sync_redis):
    store = make_store(ttl=0.3)
    lease = await acquired(store, "a")
    await asyncio.sleep(0.45)
    taken = await acquired(store, "b")
    assert await store.renew([lease]) == []
    assert stored_lease(sync_redis) == f"b|{taken.token}"


async def test_renew_of_nothing_sends_nothing(make_store):
    assert await make_store().renew([]) == []


# -- release -----------------------------------------------------------------------------


async def test_release_deletes_only_its_own_lease(make_store, sync_redis):
    store = make_store()
    lease = await acquired(store, "a")
    await store.release(Lease(KEY, "b", lease.token, 0.0))
    await store.release(Lease(KEY, "a", lease.token + 1, 0.0))
    assert stored_lease(sync_redis) == f"a|{lease.token}"
    await store.release(lease)
    assert stored_lease(sync_redis) is None
    assert int(sync_redis.get(fence_key(PREFIX, KEY))) == lease.token, "the counter stays"


async def test_a_late_release_of_an_old_owner_leaves_the_new_lease(make_store, sync_redis):
    store = make_store(ttl=0.3)
    old = await acquired(store, "a")
    await asyncio.sleep(0.45)
    new = await acquired(store, "b")
    await store.release(old)
    assert stored_lease(sync_redis) == f"b|{new.token}"


# -- fence repair --------------------------------------------------------------------


async def test_raise_fence_lifts_the_counter_above_the_floor_after_redis_lost_it(
    make_store, sync_redis
):
    store = make_store()
    for _ in range(3):
        await store.release(await acquired(store, "a"))
    stored_fence = 3  # what the object's file accepted last
    sync_redis.flushall()  # Redis restarted empty
    forgotten = await acquired(store, "a")
    assert forgotten.token == 1, "Redis forgot the counter: the token went back"
    await store.release(forgotten)

    await store.raise_fence(KEY, stored_fence)
    lease = await acquired(store, "a")
    assert lease.token == stored_fence + 1
    assert sync_redis.pttl(fence_key(PREFIX, KEY)) > 0, "counters expire with their object"


async def test_raise_fence_never_lowers_the_counter(make_store, sync_redis):
    store = make_store()
    for _ in range(5):
        await store.release(await acquired(store, "a"))
    await store.raise_fence(KEY, 2)
    assert int(sync_redis.get(fence_key(PREFIX, KEY))) == 5
    assert (await acquired(store, "a")).token == 6


async def test_raise_fence_leaves_a_held_lease_alone(make_store, sync_redis):
    store = make_store()
    lease = await acquired(store, "a")
    await store.raise_fence(KEY, 10)
    assert stored_lease(sync_redis) == f"a|{lease.token}"
    assert await store.get_holder(KEY) == LeaseHolder("a", lease.token)


# -- take over -----------------------------------------------------------------------


async def test_take_over_of_the_exact_dead_lease_gives_a_higher_token(make_store, sync_redis):
    store = make_store()
    dead = await acquired(store, "dead")
    taken = await store.take_over(KEY, LeaseHolder("dead", dead.token), "b")
    assert isinstance(taken, Lease)
    assert (taken.host_id, taken.key) == ("b", KEY)
    assert taken.token > dead.token
    assert stored_lease(sync_redis) == f"b|{taken.token}"
    assert await store.renew([dead]) == [], "the dead host's lease is gone"


async def test_take_over_refuses_any_lease_but_the_named_one(make_store, sync_redis):
    store = make_store()
    held = await acquired(store, "a")
    for wrong in (LeaseHolder("a", held.token - 1), LeaseHolder("a", held.token + 1)):
        assert await store.take_over(KEY, wrong, "b") == LeaseHolder("a", held.token)
    assert await store.take_over(KEY, LeaseHolder("x", held.token), "b") == LeaseHolder(
        "a", held.token
    )
    assert stored_lease(sync_redis) == f"a|{held.token}"
    assert int(sync_redis.get(fence_key(PREFIX, KEY))) == held.token, "no token was spent"

    # Two hosts racing to take over the same dead lease: exactly one wins.
    first = await store.take_over(KEY, LeaseHolder("a", held.token), "b")
    second = await store.take_over(KEY, LeaseHolder("a", held.token), "c")
    assert isinstance(first, Lease)
    assert second == LeaseHolder("b", first.token)


async def test_take_over_of_a_lease_that_already_expired_takes_nothing(make_store, sync_redis):
    store = make_store(ttl=0.3)
    dead = await acquired(store, "dead")
    await asyncio.sleep(0.45)
    result = await store.take_over(KEY, LeaseHolder("dead", dead.token), "b")
    assert not isinstance(result, Lease)
    assert stored_lease(sync_redis) is None


# -- local deadlines -------------------------------------------------------------------


def _keep_redis_busy(url: str, seconds: float) -> threading.Thread:
    """Run a busy script for ``seconds`` from another connection; returns once it runs."""
    client = redis.Redis.from_url(url, socket_timeout=seconds + 5)

    def run() -> None:
        try:
            client.eval(BUSY_LUA, 0, int(seconds * 1000))
        finally:
            client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.05)  # the script is running: Redis answers nobody until it ends
    return thread


@pytest.mark.parametrize("operation", ["acquire", "renew", "take_over"])
async def test_local_deadline_is_measured_from_before_the_request(
    make_store, redis_server, operation
):
    """Redis answers 0.4 s late: the local deadline still counts from before the
    request was sent, so the host believes its lease ends before Redis's does."""
    ttl = 2.0
    store = make_store(ttl=ttl)
    await store.client.ping()  # connect first: only the request itself is slow
    lease = await acquired(store, "a") if operation != "acquire" else None
    busy = _keep_redis_busy(redis_server.url, 0.4)
    sent = time.monotonic()
    if operation == "acquire":
        result = await store.acquire(KEY, "a")
    elif operation == "renew":
        assert await store.renew([lease]) == [lease]
        result = lease
    else:
        result = await store.take_over(KEY, LeaseHolder("a", lease.token), "b")
    answered = time.monotonic()
    busy.join(5)
    assert isinstance(result, Lease)
    assert answered - sent >= 0.3, "Redis was not held up: the test proves nothing"
    assert sent + ttl <= result.deadline <= sent + ttl + 0.05
    assert result.deadline < answered + ttl - 0.25


# -- inspection ------------------------------------------------------------------------


async def test_get_holder_and_get_holders_report_holders_and_remaining_time(make_store):
    store = make_store(ttl=3.0)
    assert await store.get_holder(KEY) is None
    a = await acquired(store, "a", KEY)
    b = await acquired(store, "b", OTHER)
    free = "demo.Counter:" + "ef" * 32
    assert await store.get_holder(KEY) == LeaseHolder("a", a.token)
    holders = await store.get_holders([KEY, free, OTHER])
    assert [h for h, _ in holders] == [
        LeaseHolder("a", a.token),
        None,
        LeaseHolder("b", b.token),
    ]
    (_, left_a), (_, left_free), (_, left_b) = holders
    assert 2.5 < left_a <= 3.0 and 2.5 < left_b <= 3.0
    assert left_free == 0
