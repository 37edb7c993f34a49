"""Helpers to unit-test durable objects against the real runtime.

With pytest, the fixtures of ``durable_core.testing.pytest_plugin`` (registered by the
package, nothing to configure) are the simplest way:

    async def test_counter(durable_host):
        counter = get_namespace("demo.Counter").get_by_name("t")
        assert await counter.increment() == 1

Without them, ``object_host`` runs a host for a block:

    @pytest.mark.django_db(transaction=True)
    async def test_counter(tmp_path):
        async with object_host(tmp_path):
            ...

The host is the real embedded runtime (real SQLite files, real turns, real alarms), so a
test exercises exactly what production runs. It needs the Django database with real
commits (``transaction=True``: the runtime writes records from its own thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: this package also serves code run before Django setup
    from channels.testing import WebsocketCommunicator

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


def get_instance(stub: ObjectStub | DurableObject) -> DurableObject | None:
    """The live instance behind ``stub`` in this process's host, or None if inactive."""
    from ..host import get_host

    host = get_host()
    active = host.active.get(stub.id.key) if host else None
    return active.instance if active else None


async def evict(stub: ObjectStub | DurableObject) -> bool:
    """Evict the object behind ``stub`` now (as idle eviction would); True if it was active."""
    from ..host import get_host

    host = get_host()
    active = host.active.get(stub.id.key) if host else None
    if active is None:
        return False
    await active.evict("evicted by test")
    return True


async def fire_alarm(stub: ObjectStub | DurableObject, timeout: float = 10.0) -> None:
    """Run the object's alarm now, as if it were due, and return once ``on_alarm`` ran.

    Raises:
        LookupError: the object has no alarm set.
        TimeoutError: the alarm did not run within ``timeout`` seconds.
    """
    from ..inspection import afire_alarm, ainspect

    due = await afire_alarm(stub.id)
    if due is None:
        raise LookupError(f"{stub.id.key} has no alarm set")
    deadline = time.monotonic() + timeout
    # The alarm turn clears the alarm (or sets the next one, or a retry time): once the
    # stored alarm is no longer the "now" just set, on_alarm has run and committed.
    while (await ainspect(stub.id))["alarm"] == due:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the alarm of {stub.id.key} did not run in {timeout} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def websocket(
    path: str,
    *,
    application: Any = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
) -> AsyncIterator[WebsocketCommunicator]:
    """A connected WebSocket client of ``path`` on the project's ASGI application (or
    ``application``), in this process: channels' ``WebsocketCommunicator``, disconnected
    when the block ends. The default headers come from the test client's host
    (``testserver``), which Django's test set-up adds to ``ALLOWED_HOSTS``.

    Raises:
        ConnectionRefusedError: the server refused the handshake (``.code`` is its code).
    """
    from channels.testing import WebsocketCommunicator

    if application is None:
        application = get_asgi_application()
    communicator = WebsocketCommunicator(
        application,
        path,
        headers=headers or [(b"host", b"testserver"), (b"origin", b"http://testserver")],
        subprotocols=subprotocols,
    )
    connected, code = await communicator.connect(timeout=10)
    if not connected:
        error = ConnectionRefusedError(f"WebSocket {path} refused with code {code}")
        error.code = code  # type: ignore[attr-defined]
        raise error
    try:
        yield communicator
    finally:
        await communicator.disconnect(timeout=10)


def get_asgi_application() -> Any:
    """The application named by ``settings.ASGI_APPLICATION``."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.module_loading import import_string

    name = getattr(settings, "ASGI_APPLICATION", None)
    if not name:
        raise ImproperlyConfigured("set ASGI_APPLICATION (or pass application=)")
    return import_string(name)
