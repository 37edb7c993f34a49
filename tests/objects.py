"""Durable object classes used by the tests (registered on import)."""

from __future__ import annotations

import asyncio

from durable_core.objects import DurableObject
from durable_core.registry import get_namespace


class Counter(DurableObject):
    namespace = "tests.Counter"

    async def increment(self, by: int = 1) -> int:
        n = self.storage.get("n", 0) + by
        self.storage.put("n", n)
        return n

    async def value(self) -> int:
        return self.storage.get("n", 0)

    async def slow_increment(self, delay: float) -> int:
        n = self.storage.get("n", 0)
        await asyncio.sleep(delay)  # no gate opened: nothing else may interleave
        self.storage.put("n", n + 1)
        return n + 1

    async def fail_after_write(self) -> None:
        self.storage.put("n", -1)
        raise ValueError("boom")

    async def token(self) -> int:
        return self.ctx.fencing_token


class Chain(DurableObject):
    """Calls other objects from inside its turns (gate opening)."""

    namespace = "tests.Chain"

    async def ping(self, target: str | None = None, back: str | None = None) -> str:
        self.storage.put("pings", self.storage.get("pings", 0) + 1)
        if target is None:
            return self.ctx.id.name
        stub = get_namespace("tests.Chain").get_by_name(target)
        reply = await stub.ping(back) if back else await stub.ping()
        return f"{self.ctx.id.name}>{reply}"

    async def cross(self, other: str, delay: float) -> str:
        await asyncio.sleep(delay)
        stub = get_namespace("tests.Chain").get_by_name(other)
        return f"{self.ctx.id.name}>" + await stub.ping()
