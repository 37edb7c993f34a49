"""A deliberately broken server for proving that the chaos checkers catch split brain:
the chaos settings, with the storage fence, the local lease deadline and the eviction
on a failed renewal all switched off, so that an owner frozen past its lease keeps
serving its objects from memory after a new owner took them. Used by
``python -m tests.chaos --unfenced`` only; never by the project itself."""

from durable_core.leases.base import Lease
from durable_core.leases.redis import RedisLeaseStore
from durable_core.storage.database import ObjectDatabase
from tests.chaos.settings import *  # noqa: F403

_renew = RedisLeaseStore.renew


def _claim_any(self, floor):
    self.conn.execute(
        "INSERT OR REPLACE INTO _do_meta(key, value) VALUES ('fence', ?)", (self.token,)
    )
    self._claim_pending = True


async def _renew_blindly(self, leases):
    await _renew(self, leases)
    return leases  # every lease "renewed", lost or not


ObjectDatabase.check_fence = lambda self: None  # a stale owner may commit
ObjectDatabase._claim_fence = _claim_any  # and any token may claim
# and every activation counts as having claimed its file, so that the first write of one
# that found no file never meets the "fence set by another owner meanwhile" refusal
ObjectDatabase.claimed = property(lambda self: True, lambda self, value: None)
Lease.is_valid = lambda self, now=None: True  # and a lapsed lease still answers
RedisLeaseStore.renew = _renew_blindly  # and a lost lease is never noticed
