"""DurableObject: the hooks are declared on the base class, with the defaults a class
that does not define them gets (so editors and type checkers know their signatures)."""

from __future__ import annotations

import inspect
import logging
import time

from durable_core.objects import DurableObject
from durable_core.registry import get_namespace
from durable_core.testing import fire_alarm

HOOKS = {
    "on_start": ["self"],
    "on_alarm": ["self", "info"],
    "on_websocket_connect": ["self", "ws", "request"],
    "on_websocket_message": ["self", "ws", "message"],
    "on_websocket_close": ["self", "ws", "code", "reason", "was_clean"],
    "on_websocket_error": ["self", "ws", "error"],
}


class Plain(DurableObject):
    """Defines no hook at all."""

    namespace = "tests.Plain"

    async def set_alarm_in(self, seconds: float) -> None:
        self.storage.set_alarm(time.time() + seconds)

    async def alarm(self) -> float | None:
        return self.storage.get_alarm()


def test_every_hook_is_a_documented_async_method_of_the_base_class():
    for name, parameters in HOOKS.items():
        hook = getattr(DurableObject, name)
        assert inspect.iscoroutinefunction(hook), name
        assert list(inspect.signature(hook).parameters) == parameters, name
        assert hook.__doc__, name
        assert not DurableObject.is_callable_method(name)  # hooks are never RPC methods


async def test_an_alarm_without_a_handler_is_cleared_with_a_warning(durable_host, caplog):
    plain = get_namespace("tests.Plain").get_by_name("p")
    await plain.set_alarm_in(3600)
    with caplog.at_level(logging.WARNING, logger="durable_core"):
        await fire_alarm(plain)
    assert await plain.alarm() is None
    assert "has an alarm but no on_alarm handler" in caplog.text
