"""The Redis lease store: leases with fencing tokens shared by every host (DESIGN §4).

Acquire, renew, release and fence repair are Lua scripts registered once (EVALSHA) over
hash-tagged keys. Renewal of all of a host's leases is one pipelined round trip. Local
deadlines come from the monotonic clock read *before* a request is sent, so a host's
idea of its lease always ends before Redis's.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from .. import clock
from . import _lua
from .base import Lease, LeaseHolder, LeaseStore

FENCE_TTL_MS = 30 * 24 * 3600 * 1000  # counters expire with long-idle objects


def lease_key(prefix: str, key: str) -> str:
    """The Redis key of an object's lease (``key`` is ``namespace:hex``)."""
    return f"{prefix}:lease:{{{key}}}"


def fence_key(prefix: str, key: str) -> str:
    """The Redis key of an object's fencing counter (same hash slot as its lease)."""
    return f"{prefix}:fence:{{{key}}}"


def _parse(value: bytes | str) -> LeaseHolder:
    text = value.decode() if isinstance(value, bytes) else value
    host_id, _, token = text.rpartition("|")
    return LeaseHolder(host_id, int(token))


class RedisLeaseStore(LeaseStore):
    """Leases in Redis, for any number of hosts."""

    def __init__(self, client: aioredis.Redis, *, ttl: float, prefix: str) -> None:
        self.ttl = ttl
        self.prefix = prefix
        self.client = client
        self._ttl_ms = int(ttl * 1000)
        self._acquire = client.register_script(_lua.ACQUIRE)
        self._renew = client.register_script(_lua.RENEW)
        self._release = client.register_script(_lua.RELEASE)
        self._raise_fence = client.register_script(_lua.RAISE_FENCE)
        self._take_over = client.register_script(_lua.TAKE_OVER)

    async def acquire(self, key: str, host_id: str) -> Lease | LeaseHolder:
        start = clock.monotonic()
        won, value = await self._acquire(
            keys=[lease_key(self.prefix, key), fence_key(self.prefix, key)],
            args=[host_id, self._ttl_ms, FENCE_TTL_MS],
        )
        if won:
            return Lease(key, host_id, int(value), start + self.ttl)
        return _parse(value)

    async def renew(self, leases: list[Lease]) -> list[Lease]:
        if not leases:
            return []
        start = clock.monotonic()
        async with self.client.pipeline(transaction=False) as pipe:
            for lease in leases:
                await self._renew(
                    keys=[lease_key(self.prefix, lease.key)],
                    args=[f"{lease.host_id}|{lease.token}", self._ttl_ms],
                    client=pipe,
                )
            results = await pipe.execute(raise_on_error=False)
        renewed = []
        for lease, ok in zip(leases, results, strict=True):
            if ok == 1:
                lease.deadline = start + self.ttl
                renewed.append(lease)
        return renewed

    async def release(self, lease: Lease) -> None:
        await self._release(
            keys=[lease_key(self.prefix, lease.key)], args=[f"{lease.host_id}|{lease.token}"]
        )

    async def get_holder(self, key: str) -> LeaseHolder | None:
        value = await self.client.get(lease_key(self.prefix, key))
        return None if value is None else _parse(value)

    async def get_holders(self, keys: list[str]) -> list[tuple[LeaseHolder | None, float]]:
        """Holders and remaining seconds for many objects in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(lease_key(self.prefix, key))
                pipe.pttl(lease_key(self.prefix, key))
            raw = await pipe.execute()
        out = []
        for value, pttl in zip(raw[::2], raw[1::2], strict=True):
            out.append((None if value is None else _parse(value), max(0, pttl) / 1000))
        return out

    async def raise_fence(self, key: str, floor: int) -> None:
        await self._raise_fence(keys=[fence_key(self.prefix, key)], args=[floor, FENCE_TTL_MS])

    async def take_over(self, key: str, dead: LeaseHolder, host_id: str) -> Lease | LeaseHolder:
        """Take the lease of a host known to be dead, if that lease is still in place."""
        start = clock.monotonic()
        won, value = await self._take_over(
            keys=[lease_key(self.prefix, key), fence_key(self.prefix, key)],
            args=[f"{dead.host_id}|{dead.token}", host_id, self._ttl_ms, FENCE_TTL_MS],
        )
        if won:
            return Lease(key, host_id, int(value), start + self.ttl)
        return _parse(value) if value else LeaseHolder("", 0)

    async def close(self) -> None:
        await self.client.aclose()
