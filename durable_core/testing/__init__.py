"""Helpers to unit-test durable objects against the real runtime.

    from durable_core.testing import object_host

    async def test_counter(tmp_path):
        async with object_host(tmp_path):
            counter = get_namespace("demo.Counter").get_by_name("t")
            assert await counter.increment() == 1

The host is the real embedded runtime (real SQLite files, real turns, real alarms), so a
test exercises exactly what production runs. Tests that touch alarms or records need the
Django database (``@pytest.mark.django_db(transaction=True)`` with pytest-django).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: this package also serves code run before Django setup
    from ..host import ObjectHost
    from ..objects import DurableObject
    from ..stubs import ObjectStub


@contextlib.asynccontextmanager
async def object_host(storage_dir: Path | str, **overrides: Any) -> AsyncIterator[ObjectHost]:
    """Run an embedded host storing objects under ``storage_dir`` for the block.

    ``overrides`` are ``DURABLE_OBJECTS`` settings (``IDLE_TIMEOUT=0.2``, …).
    """
    from django.conf import settings
    from django.test import override_settings

    from ..host import get_host, start_host, stop_host

    if get_host() is not None:
        raise RuntimeError("an object host already runs in this process")
    configured = dict(getattr(settings, "DURABLE_OBJECTS", {}) or {})
    configured.update({"STORAGE_DIR": str(storage_dir), "REDIS_URL": None}, **overrides)
    with override_settings(DURABLE_OBJECTS=configured):
        host = await start_host()
        try:
            yield host
        finally:
            await stop_host()


def get_instance(stub: ObjectStub) -> DurableObject | None:
    """The live instance behind ``stub`` in this process's host, or None if inactive."""
    from ..host import get_host

    host = get_host()
    active = host.active.get(stub.id.key) if host else None
    return active.instance if active else None


async def evict(stub: ObjectStub) -> bool:
    """Evict the object behind ``stub`` now (as idle eviction would); True if it was active."""
    from ..host import get_host

    host = get_host()
    active = host.active.get(stub.id.key) if host else None
    if active is None:
        return False
    await active.evict("evicted by test")
    return True
