"""pytest fixtures for projects using durable_core, registered by the package itself
(the ``pytest11`` entry point): nothing to add to ``conftest.py``.

``durable_host`` runs the real embedded runtime for one test, on the test's event loop,
with the Django database (it requests pytest-django's ``transactional_db``), a private
storage directory and a private ID key, so tests share nothing:

    async def test_counter(durable_host):
        counter = get_namespace("shop.Cart").get_by_name("t")
        assert await counter.add("apple") == 1

``durable_websocket`` opens in-process WebSocket clients of the project's ASGI
application, closed after the test. ``durable_clock`` moves the runtime's wall clock by
hand (``await durable_clock.advance(3 * 86400)`` runs every alarm due by then), and
``durable_core.testing.fire_alarm(stub)`` runs one object's alarm on demand. Needs
pytest-django and pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from channels.testing import WebsocketCommunicator

    from ..host import ObjectHost
    from .clock import ManualClock

try:  # pytest-asyncio runs async fixtures on the test's loop, in strict mode too
    import pytest_asyncio

    try:
        _async_fixture: Callable[..., Any] = pytest_asyncio.fixture(loop_scope="function")
    except TypeError:  # pytest-asyncio before 0.24 has no loop_scope: the loop is the test's
        _async_fixture = pytest_asyncio.fixture
except ImportError:  # without pytest-asyncio the fixtures cannot run; say so when used
    _async_fixture = pytest.fixture

# Environment variables that would point the test's host at a real deployment.
_ENVIRONMENT = ("REDIS_URL", "STORAGE_DIR", "ID_KEY", "ID_KEY_FILE")


@_async_fixture
async def durable_host(
    transactional_db: None,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ObjectHost]:
    """An embedded object host for this test: private storage directory and ID key,
    no Redis, stopped (drained and committed) after the test."""
    from ..ids import reset_id_key_cache
    from . import object_host

    for name in _ENVIRONMENT:
        monkeypatch.delenv(f"DURABLE_{name}", raising=False)
    directory = tmp_path_factory.mktemp("durable")
    reset_id_key_cache()
    try:
        async with object_host(
            directory / "objects", ID_KEY=None, ID_KEY_FILE=str(directory / "id_key")
        ) as host:
            yield host
    finally:
        reset_id_key_cache()


@_async_fixture
async def durable_websocket(
    durable_host: ObjectHost,
) -> AsyncIterator[Callable[..., AbstractAsyncContextManager[WebsocketCommunicator]]]:
    """A factory of connected WebSocket clients: ``async with durable_websocket(path) as
    ws`` (keyword arguments as ``durable_core.testing.websocket``)."""
    from . import websocket

    yield websocket


@pytest.fixture
def durable_clock(durable_host: ObjectHost) -> Iterator[ManualClock]:
    """The runtime's wall clock for this test, moved only by ``await advance(seconds)``,
    which also runs the alarms due by then (``durable_core.testing.clock``)."""
    from .clock import ManualClock

    manual = ManualClock().install()
    try:
        yield manual
    finally:
        manual.uninstall()
