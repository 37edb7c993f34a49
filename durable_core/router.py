"""The router: where a call goes, and when it is retried (DESIGN §3).

The routing decision lives here and only here. Arguments and results always cross as
JSON text and errors as envelopes, on the local fast path exactly as on the remote one,
so embedded and cluster modes never diverge. A call is retried, with the same call id,
only on errors that prove it had no effect (retryable ones); the owner keeps recent call
ids with their results, so a retry of a call that did run returns the first result.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from .conf import get_setting
from .exceptions import CallTimeout, NoHostError, error_from_dict, error_to_dict
from .ids import ObjectId
from .turns import Event, encode_json, get_current_turn

_RETRY_PAUSE = (0.0, 0.005, 0.02, 0.05, 0.1, 0.2)


class Router:
    """Delivers calls to the host that owns each object."""

    def __init__(self) -> None:
        self.host = None  # this process's ObjectHost, once started

    async def call(
        self,
        object_id: ObjectId,
        method: str,
        args: tuple | list,
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
        call_id: str | None = None,
    ) -> Any:
        """Call ``method`` on the object and return its (JSON-copied) result.

        ``call_id``: give the id of an earlier attempt (``CallTimeout.call_id``) to retry
        it; if that attempt committed, its first result is returned and nothing reruns.
        """
        payload = encode_json([list(args), kwargs], "call arguments")
        turn = get_current_turn()
        if turn is not None and not turn.gate_open:
            # A call to another object opens the caller's gate (Cloudflare's rule), so
            # A→B→A completes and crossing chains A→B / B→A never deadlock.
            async with turn.active.open_gate():
                return await self._send(object_id, "call", method, payload, timeout, call_id)
        return await self._send(object_id, "call", method, payload, timeout, call_id)

    async def deliver_alarm(self, object_id: ObjectId) -> None:
        """Deliver a due alarm to the object wherever it is (or gets) activated."""
        await self._send(object_id, "alarm", "", "null", None)

    async def _send(
        self,
        object_id: ObjectId,
        kind: str,
        method: str,
        payload: str,
        timeout: float | None,
        call_id: str | None = None,
    ) -> Any:
        host = self.host
        if host is None:
            raise NoHostError(
                "this process runs no object host: in embedded mode only the server process "
                "(manage.py runserver) owns objects; configure DURABLE_OBJECTS['REDIS_URL'] "
                "to call objects from other processes"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or float(get_setting("CALL_TIMEOUT")))
        retry = call_id is not None  # a caller-given id may name an attempt that ran
        call_id = call_id or uuid.uuid4().hex
        attempt = 0
        while True:
            future = loop.create_future()
            event = Event(kind, future, method, payload, call_id, retry=retry or attempt > 0)
            remaining = deadline - loop.time()
            try:
                async with asyncio.timeout(remaining):
                    await host.deliver(object_id, event)
                    status, body = await future
            except TimeoutError:
                error = CallTimeout(
                    f"no reply from {object_id.key} within the deadline; the call may have run: "
                    f"retry it with call_id={call_id!r}"
                )
                error.call_id = call_id
                raise error from None
            except Exception as exc:  # refused before the event was queued
                status, body = "err", error_to_dict(exc)
            if status == "ok":
                return json.loads(body)
            error = error_from_dict(body)
            if not error.retryable or error.overloaded or attempt >= len(_RETRY_PAUSE) - 1:
                raise error
            attempt += 1
            await asyncio.sleep(min(_RETRY_PAUSE[attempt], max(0.0, deadline - loop.time())))


_router = Router()


def get_router() -> Router:
    """The process-wide router."""
    return _router
