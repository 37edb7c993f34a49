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

    async def destroy_me(self) -> None:
        self.ctx.destroy()

    async def abort_me(self) -> int:
        self.storage.put("aborted", True)
        self.ctx.abort("test abort")
        return self.storage.get("n", 0)


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

    async def call_other(self, namespace: str, name: str) -> str:
        return await get_namespace(namespace).get_by_name(name).ping()

    async def cross(self, other: str, delay: float) -> str:
        await asyncio.sleep(delay)
        stub = get_namespace("tests.Chain").get_by_name(other)
        return f"{self.ctx.id.name}>" + await stub.ping()


class Gated(DurableObject):
    """Opens its gate explicitly around a slow await."""

    namespace = "tests.Gated"

    async def wait_outside(self, delay: float) -> int:
        self.storage.put("before", self.storage.get("before", 0) + 1)
        async with self.ctx.open_gate():
            await asyncio.sleep(delay)
        self.storage.put("after", self.storage.get("after", 0) + 1)
        return self.storage.get("after")

    async def write_inside_open_gate(self) -> None:
        async with self.ctx.open_gate():
            self.storage.put("x", 1)

    async def quick(self) -> int:
        return self.storage.get("before", 0)


class Stateful(DurableObject):
    """Keeps an in-memory cache to show resets after failures."""

    namespace = "tests.Stateful"
    starts = 0

    async def on_start(self) -> None:
        Stateful.starts += 1
        self.cache = self.storage.get("v", 0)

    async def bump_memory_then_fail(self) -> None:
        self.cache += 100
        raise RuntimeError("after mutating memory")

    async def cached(self) -> int:
        return self.cache

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def echo(self, value):
        return value

    async def give_unencodable(self):
        return {1, 2}


class Alarmed(DurableObject):
    namespace = "tests.Alarmed"
    fail_times = 0  # class-level: a raising handler's storage writes are rolled back

    async def schedule(self, at: float) -> None:
        self.storage.set_alarm(at)

    async def alarm(self) -> float | None:
        return self.storage.get_alarm()

    async def firings(self) -> list:
        return self.storage.get("firings", [])

    async def on_alarm(self, info) -> None:
        firings = self.storage.get("firings", [])
        firings.append([info.retry_count, info.is_retry])
        self.storage.put("firings", firings)
        if Alarmed.fail_times:
            Alarmed.fail_times -= 1
            raise RuntimeError("alarm handler failure")


class Starter(DurableObject):
    """An object whose on_start fails a given number of times."""

    namespace = "tests.Starter"
    failures_left = 0
    delay = 0.0  # seconds on_start takes

    async def on_start(self) -> None:
        if Starter.delay:
            await asyncio.sleep(Starter.delay)
        if Starter.failures_left:
            Starter.failures_left -= 1
            raise RuntimeError("on_start failed")

    async def hello(self) -> str:
        return "hi"


class Sockets(DurableObject):
    """WebSocket hooks driven in-process by tests/core/test_websockets.py."""

    namespace = "tests.Sockets"

    async def on_websocket_connect(self, ws, request) -> None:
        tags = request.kwargs.get("tags", "t").split(",")
        self.ctx.accept_websocket(ws, tags=tags)
        size = int(request.kwargs.get("attachment", "0"))
        if size:
            ws.serialize_attachment("x" * size)

    async def on_websocket_close(self, ws, code, reason, was_clean) -> None:
        self.storage.put("closed", [*self.storage.get("closed", []), [ws.id, code, was_clean]])

    async def on_websocket_error(self, ws, error) -> None:
        errors = self.storage.get("errors", [])
        self.storage.put("errors", [*errors, [ws.id, error.code, type(error).__name__]])
        if ws.id.startswith("raise"):
            raise RuntimeError("the error handler failed")

    async def state(self) -> dict:
        return {
            "sockets": sorted(ws.id for ws in self.ctx.get_websockets()),
            "closed": self.storage.get("closed", []),
            "errors": self.storage.get("errors", []),
        }

    async def send_outside(self) -> None:
        sockets = self.ctx.get_websockets()

        async def later():
            sockets[0].send("too late")

        async with self.ctx.open_gate():
            await later()


class Migrating(DurableObject):
    """Writes in on_start (a schema migration), so activating it must allow writes."""

    namespace = "tests.Migrating"

    async def on_start(self) -> None:
        self.storage.migrate([lambda sql: sql.execute("CREATE TABLE t (x)")])

    async def ping(self) -> str:
        return "pong"


class CachedCounter(DurableObject):
    """Reads its storage once, in on_start; answers value() from memory."""

    namespace = "tests.CachedCounter"

    async def on_start(self) -> None:
        self.n = self.storage.get("n", 0)

    async def value(self) -> int:
        return self.n


class Edgy(DurableObject):
    """Turns that reach the runtime's edges (tests/core/test_edges.py): gates held
    across time limits, destroys that fail, calls that write then await."""

    namespace = "tests.Edgy"

    async def on_start(self) -> None:
        self.n = self.storage.get("n", 0)  # a cache, as real objects keep

    async def bump(self) -> int:
        self.n += 1
        self.storage.put("n", self.n)
        return self.n

    async def get(self, key: str):
        return self.storage.get(key)

    async def cached(self) -> int:
        return self.n  # from memory: no storage read

    async def put(self, key: str, value) -> None:
        self.storage.put(key, value)

    async def hold(self, before: float, outside: float) -> str:
        await asyncio.sleep(before)  # holding the gate
        async with self.ctx.open_gate():
            await asyncio.sleep(outside)
        return "held"

    async def write_then_sleep(self, key: str, delay: float) -> str:
        self.storage.put(key, True)
        await asyncio.sleep(delay)
        return key

    async def write_then_open_gate(self, key: str, delay: float) -> str:
        self.storage.put(key, True)
        await asyncio.sleep(delay)
        async with self.ctx.open_gate():
            pass
        return "carried on"

    async def destroy_then_fail(self) -> None:
        self.ctx.destroy()
        raise ValueError("changed my mind")

    async def destroy_me(self) -> None:
        self.ctx.destroy()

    async def write_then_call(self, counter: str) -> int:
        self.storage.put("calls", self.storage.get("calls", 0) + 1)
        return await get_namespace("tests.Counter").get_by_name(counter).increment()

    async def call_then_fail(self, counter: str) -> None:
        await get_namespace("tests.Counter").get_by_name(counter).increment()
        raise ValueError("after the call")

    async def on_websocket_connect(self, ws, request) -> None:
        self.ctx.accept_websocket(ws)

    async def on_websocket_message(self, ws, message) -> None:
        self.storage.put("messages", self.storage.get("messages", 0) + 1)

    async def panic(self) -> None:
        """Raises what pyo3 raises for a Rust panic (pycrdt): a BaseException."""
        self.storage.put("panicked", True)

        class PanicException(BaseException):
            pass

        raise PanicException("native code panicked")

    async def await_inside_transaction(self) -> None:
        with self.storage.transaction():
            self.storage.put("half", True)
            await get_namespace("tests.Counter").get_by_name("inside").increment()

    async def on_websocket_close(self, ws, code, reason, was_clean) -> None:
        """Tells another object (its gate opens and commits), then fails."""
        self.storage.put("closed", ws.id)
        await get_namespace("tests.Counter").get_by_name(f"closes-{ws.id}").increment()
        raise ValueError("the close handler failed after telling another object")

    async def count_gate_then_fail(self, retryable: bool) -> None:
        """Counts, commits at a gate, then fails (with a retryable error if asked)."""
        from durable_core.exceptions import ObjectReset

        self.storage.put("counted", self.storage.get("counted", 0) + 1)
        async with self.ctx.open_gate():
            pass
        raise ObjectReset("failing after the gate") if retryable else ValueError("after the gate")
