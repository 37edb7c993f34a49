"""The lease-store interface shared by the embedded and the Redis implementation.

A lease is ``owner + fencing token + expiry``. The token grows every time the lease
changes hands; the object's storage is the final judge of which token may commit. Local
deadlines are measured on the monotonic clock from *before* the acquire was sent, so a
host can only ever believe its lease ends earlier than it really does.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from .. import clock


@dataclass
class Lease:
    """This host's hold on one object."""

    key: str
    host_id: str
    token: int
    deadline: float  # clock.monotonic() after which the lease must be treated as lost

    def is_valid(self, now: float | None = None) -> bool:
        """True while the local deadline has not passed."""
        return (clock.monotonic() if now is None else now) < self.deadline


@dataclass(frozen=True)
class LeaseHolder:
    """Another host's lease, as the store reports it."""

    host_id: str
    token: int


class LeaseStore(abc.ABC):
    """Acquire, renew, release and inspect leases; implementations must be atomic."""

    ttl: float

    @abc.abstractmethod
    async def acquire(self, key: str, host_id: str) -> Lease | LeaseHolder:
        """Take the lease if free (with a new, higher token) or report its holder."""

    @abc.abstractmethod
    async def renew(self, leases: list[Lease]) -> list[Lease]:
        """Extend every lease still held with the same host and token; returns those renewed."""

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """Give the lease up if it is still held with this host and token."""

    @abc.abstractmethod
    async def get_holder(self, key: str) -> LeaseHolder | None:
        """The current holder of ``key``, if any."""

    @abc.abstractmethod
    async def take_over(self, key: str, dead: LeaseHolder, host_id: str) -> Lease | LeaseHolder:
        """Take the lease of a host known dead, only if ``dead``'s lease is still in place;
        the new token is higher than the dead host's."""

    @abc.abstractmethod
    async def raise_fence(self, key: str, floor: int) -> None:
        """Make the next token for ``key`` exceed ``floor`` (after the store lost data)."""

    async def close(self) -> None:
        """Release connections held by the store."""
        return None
