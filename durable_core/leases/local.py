"""The embedded lease store: in-process, but issuing real fencing tokens.

Embedded mode has one host, so leases never contend; the store still issues growing
tokens so that the storage's fence check runs exactly as in cluster mode. Its counters
start from zero in every process: the fence stored in each object's file (and the
floor in its record) makes the host bump the counter above it on activation. For the
same reason the store remembers only the counters of recently used keys: a forgotten
one costs one extra fence round at the next activation, and a million objects touched
once do not stay in memory forever.
"""

from __future__ import annotations

from collections import OrderedDict

from .. import clock
from .base import Lease, LeaseHolder, LeaseStore


class LocalLeaseStore(LeaseStore):
    """Leases held in a dict, for the single embedded host."""

    remembered_fences = 10_000

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._leases: dict[str, tuple[str, int, float]] = {}
        self._fences: OrderedDict[str, int] = OrderedDict()

    def _set_fence(self, key: str, token: int) -> None:
        self._fences[key] = token
        self._fences.move_to_end(key)
        while len(self._fences) > self.remembered_fences:
            self._fences.popitem(last=False)

    async def acquire(self, key: str, host_id: str) -> Lease | LeaseHolder:
        start = clock.monotonic()
        held = self._leases.get(key)
        if held is not None and held[2] > start and held[0] != host_id:
            return LeaseHolder(held[0], held[1])
        token = self._fences.get(key, 0) + 1
        self._set_fence(key, token)
        self._leases[key] = (host_id, token, start + self.ttl)
        return Lease(key, host_id, token, start + self.ttl)

    async def renew(self, leases: list[Lease]) -> list[Lease]:
        start = clock.monotonic()
        renewed = []
        for lease in leases:
            held = self._leases.get(lease.key)
            if held is not None and held[:2] == (lease.host_id, lease.token) and held[2] > start:
                self._leases[lease.key] = (lease.host_id, lease.token, start + self.ttl)
                lease.deadline = start + self.ttl
                renewed.append(lease)
        return renewed

    async def release(self, lease: Lease) -> None:
        held = self._leases.get(lease.key)
        if held is not None and held[:2] == (lease.host_id, lease.token):
            del self._leases[lease.key]

    async def get_holder(self, key: str) -> LeaseHolder | None:
        held = self._leases.get(key)
        if held is None or held[2] <= clock.monotonic():
            return None
        return LeaseHolder(held[0], held[1])

    async def take_over(self, key: str, dead: LeaseHolder, host_id: str) -> Lease | LeaseHolder:
        held = self._leases.get(key)
        if held is not None and held[:2] != (dead.host_id, dead.token):
            return LeaseHolder(held[0], held[1])
        self._leases.pop(key, None)
        return await self.acquire(key, host_id)

    async def raise_fence(self, key: str, floor: int) -> None:
        self._set_fence(key, max(self._fences.get(key, 0), floor))
