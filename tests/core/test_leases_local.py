"""The embedded lease store keeps a bounded memory of fence counters, and an object
whose counter it forgot still activates with a token above its stored fence."""

from __future__ import annotations

import pytest

from durable_core.leases.base import Lease
from durable_core.leases.local import LocalLeaseStore
from durable_core.registry import get_namespace
from durable_core.testing import evict, object_host


async def test_fence_counters_are_bounded():
    store = LocalLeaseStore(ttl=5)
    store.remembered_fences = 100
    for i in range(1000):
        lease = await store.acquire(f"k{i}", "h")
        assert isinstance(lease, Lease)
        await store.release(lease)
    assert len(store._fences) == 100
    again = await store.acquire("k999", "h")  # recently used: still remembered
    assert again.token == 2


@pytest.mark.django_db(transaction=True)
async def test_forgotten_counter_still_activates_above_the_stored_fence(tmp_path):
    async with object_host(tmp_path / "objects") as host:
        host.lease_store.remembered_fences = 1
        counter = get_namespace("demo.Counter").get_by_name("fenced")
        tokens = []
        for round_ in range(3):
            assert await counter.increment() == round_ + 1
            tokens.append(host.active[counter.id.key].lease.token)
            assert await evict(counter)
            # Another object pushes this one's counter out of the store's memory.
            await get_namespace("demo.Counter").get_by_name(f"other{round_}").increment()
        assert tokens == sorted(set(tokens)), tokens
        assert await counter.value() == 3
