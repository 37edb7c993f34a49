"""The router: where a call goes, and when it is retried (DESIGN §3).

The routing decision lives here and only here:

1. The object is active on this host: straight into its mailbox (no Redis).
2. Otherwise ask the lease store who owns it (cached briefly). Nobody, or a dead host:
   a host process claims it itself ("first access wins"); a client-only process sends
   it to a live host chosen by rendezvous hashing.
3. Another live host owns it: send the call over the transport to that host's channel
   with a reply channel, and wait with a deadline.

Arguments and results always cross as JSON text and errors as envelopes, on the local
fast path exactly as on the remote one, so embedded and cluster modes never diverge.
A call is retried with the same call id only on errors that prove it had no effect
(retryable ones) or when its owner died or changed while the caller waited; owners keep
recent call ids with their results, so a retry of a call that did run returns the first
result instead of running twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from . import clock, metrics
from .conf import get_setting, is_cluster_mode
from .events import Event, encode_json, get_current_turn
from .exceptions import (
    CallTimeout,
    HostUnavailable,
    NoHostError,
    NotOwner,
    error_from_dict,
    error_to_dict,
)
from .ids import ObjectId

if TYPE_CHECKING:
    from .host import ObjectHost
    from .transport import Transport

logger = logging.getLogger(__name__)

_SERVED_CACHE = 10_000  # replies kept to answer a resent copy of an attempt
_RETRY_PAUSE = (0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
_LOCAL = "local"


class Router:
    """Delivers calls to the host that owns each object."""

    def __init__(self) -> None:
        self.host: ObjectHost | None = None  # this process's host, once started
        self._transport: Transport | None = None  # a client-only process's reply channel
        self._transport_loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, _PendingCall] = {}
        self._owners: dict[str, tuple[str, float]] = {}  # key → (host id, expiry)
        self._client_store = None
        self._client_registry = None
        self._serving: set[asyncio.Task] = set()
        self._serving_keys: set[str] = set()  # attempts being served here
        self._served: OrderedDict[str, dict] = OrderedDict()  # recent replies, for copies

    # -- public entry points -------------------------------------------------------

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
        retry = call_id is not None  # a caller-given id may name an attempt that ran
        if turn is not None and call_id is None:
            # A turn's calls take ids derived from its own: when the turn is retried,
            # its calls are recognised by their callees instead of applied twice.
            call_id = turn.nested_call_id(object_id.key, method)
            retry = call_id is not None and bool(turn.event and turn.event.retry)
        if turn is not None and not turn.gate_open:
            # A call to another object opens the caller's gate (Cloudflare's rule), so
            # A→B→A completes and crossing chains A→B / B→A never deadlock.
            async with turn.active.open_gate():
                return await self._send(
                    object_id, "call", method, payload, timeout, call_id, retry=retry
                )
        return await self._send(object_id, "call", method, payload, timeout, call_id, retry=retry)

    async def send_event(
        self, object_id: ObjectId, method: str, payload: str, *, lifecycle: bool = False
    ) -> Any:
        """Deliver a WebSocket event (connect, message, close, front_dead) to the object.

        ``lifecycle`` events (connect, close) are never refused by the mailbox bound.
        """
        return await self._send(object_id, "ws", method, payload, None, lifecycle=lifecycle)

    async def deliver_alarm(self, object_id: ObjectId) -> None:
        """Deliver a due alarm to the object wherever it is (or gets) activated."""
        await self._send(object_id, "alarm", "", "null", None)

    async def inspect(self, object_id: ObjectId, action: str, payload: str) -> Any:
        """Run an inspection action (``inspection.ACTIONS``) as a turn of the object on
        its owner. Passive actions raise ObjectNotActive where it is not active."""
        return await self._send(object_id, "inspect", action, payload, None)

    # -- the retry loop --------------------------------------------------------------

    async def _send(
        self,
        object_id: ObjectId,
        kind: str,
        method: str,
        payload: str,
        timeout: float | None,
        call_id: str | None = None,
        *,
        lifecycle: bool = False,
        retry: bool | None = None,
    ) -> Any:
        host = self.host
        if host is None and not is_cluster_mode():
            raise NoHostError(
                "this process runs no object host: in embedded mode only the server process "
                "(manage.py runserver) owns objects; configure DURABLE_OBJECTS['REDIS_URL'] "
                "to call objects from other processes"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or float(get_setting("CALL_TIMEOUT")))
        if retry is None:
            retry = call_id is not None  # a caller-given id may name an attempt that ran
        call_id = call_id or uuid.uuid4().hex
        attempt = 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    target = await self._locate(object_id)
                    metrics.call_routed(target == _LOCAL, kind)
                    if target == _LOCAL:
                        status, body = await self._deliver_local(
                            object_id,
                            kind,
                            method,
                            payload,
                            call_id,
                            retry or attempt > 0,
                            lifecycle,
                        )
                    else:
                        status, body = await self._deliver_remote(
                            target,
                            object_id,
                            kind,
                            method,
                            payload,
                            call_id,
                            attempt,
                            retry,
                            lifecycle,
                        )
            except TimeoutError:
                self._owners.pop(object_id.key, None)  # the next attempt asks Redis afresh
                error = CallTimeout(
                    f"no reply from {object_id.key} within the deadline; the call may have run: "
                    f"retry it with call_id={call_id!r}"
                )
                error.call_id = call_id
                raise error from None
            except (RedisError, OSError) as exc:  # Redis unreachable: retry within the deadline
                status, body = "err", HostUnavailable(f"coordination unavailable: {exc}").to_dict()
            if status == "ok":
                return json.loads(body)
            error = error_from_dict(body)
            if isinstance(error, NotOwner | HostUnavailable):
                self._owners.pop(object_id.key, None)
            if not error.retryable or error.overloaded:
                raise error
            attempt += 1  # retries are bounded by the deadline
            pause = _RETRY_PAUSE[min(attempt, len(_RETRY_PAUSE) - 1)]
            if loop.time() + pause >= deadline:
                raise error
            await asyncio.sleep(pause)

    async def _deliver_local(
        self,
        object_id: ObjectId,
        kind: str,
        method: str,
        payload: str,
        call_id: str,
        retry: bool,
        lifecycle: bool = False,
    ) -> tuple[str, Any]:
        future = asyncio.get_running_loop().create_future()
        event = Event(kind, future, method, payload, call_id, retry=retry, lifecycle=lifecycle)
        try:
            await self.host.deliver(object_id, event)  # type: ignore[union-attr]
        except (RedisError, ConnectionError) as exc:  # the lease store is unreachable
            return "err", HostUnavailable(f"coordination unavailable: {exc}").to_dict()
        except Exception as exc:  # refused before the event was queued
            return "err", error_to_dict(exc)
        return await future

    # -- where is the object? -----------------------------------------------------------

    async def _locate(self, object_id: ObjectId) -> str:
        """``_LOCAL`` or the id of the live host that owns (or should own) the object."""
        key = object_id.key
        host = self.host
        if host is not None:
            active = host.active.get(key)
            if active is not None and not active.closing:
                return _LOCAL
            if host.registry is None:
                return _LOCAL  # embedded: this host owns everything
        cached = self._owners.get(key)
        if cached is not None and cached[1] > clock.monotonic():
            return cached[0]
        store, registry = self._cluster_parts()
        holder = await store.get_holder(key)
        if holder is not None and host is not None and holder.host_id == host.host_id:
            return _LOCAL
        if holder is not None and not await registry.is_dead(holder.host_id):
            self._owners[key] = (holder.host_id, clock.monotonic() + store.ttl / 2)
            return holder.host_id
        if host is not None:
            return _LOCAL  # free, or its holder died: claim it here (first access wins)
        live = await registry.live_host_ids()
        if not live:
            raise HostUnavailable("no live object host to run the call")
        return max(live, key=lambda h: hashlib.sha256(f"{h}|{key}".encode()).digest())

    def cluster_parts(self):
        """The lease store and host registry this process reads (cluster mode)."""
        return self._cluster_parts()

    def _cluster_parts(self):
        if self.host is not None:
            return self.host.lease_store, self.host.registry
        if self._client_store is None:
            from .host import make_redis_client
            from .hosts import HostRegistry
            from .leases.redis import RedisLeaseStore

            client = make_redis_client()
            prefix = get_setting("KEY_PREFIX")
            self._client_store = RedisLeaseStore(
                client, ttl=float(get_setting("LEASE_TTL")), prefix=prefix
            )
            self._client_registry = HostRegistry(client, prefix, {"id": "client"}, 1.0)
        return self._client_store, self._client_registry

    # -- remote calls ------------------------------------------------------------------

    async def _reply_transport(self) -> Transport:
        if self.host is not None:
            return self.host.transport  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        if self._transport is None or self._transport_loop is not loop:
            from .transport import get_transport

            transport = get_transport()
            await transport.start(self.handle_message)
            self._transport, self._transport_loop = transport, loop
        return self._transport

    async def _deliver_remote(
        self,
        owner: str,
        object_id: ObjectId,
        kind: str,
        method: str,
        payload: str,
        call_id: str,
        attempt: int,
        retry: bool,
        lifecycle: bool = False,
    ) -> tuple[str, Any]:
        """Send the call to ``owner`` and wait for the reply; while waiting, check now and
        then that the owner still lives and holds the lease, else ask for a retry.

        Replies are matched per attempt, so a late reply of an earlier attempt (from an
        owner that was paused past its lease) is never taken for this one's.
        """
        store, registry = self._cluster_parts()
        channel = await registry.get_channel(owner)
        if channel is None:
            self._owners.pop(object_id.key, None)
            return "err", HostUnavailable(f"host {owner} is not registered").to_dict()
        transport = await self._reply_transport()
        pending = _PendingCall(asyncio.get_running_loop().create_future())
        reply_key = f"{call_id}:{attempt}"
        self._pending[reply_key] = pending
        message = {
            "type": "durable.call",
            "call_id": call_id,
            "namespace": object_id.namespace,
            "id": object_id.hex,
            "name": object_id.name,
            "kind": kind,
            "method": method,
            "payload": payload,
            "retry": retry or attempt > 0,
            "reply_to": transport.channel,
            "reply_key": reply_key,
            "lifecycle": lifecycle,
        }
        try:
            await transport.send(channel, message)
            # Check soon (a dead owner is noticed within ~0.1 s), then less often.
            wait, longest = 0.1, max(0.1, store.ttl / 4)
            while True:
                done, _ = await asyncio.wait({pending.future}, timeout=wait)
                if done:
                    return pending.future.result()
                holder = await store.get_holder(object_id.key)
                if holder is None or holder.host_id != owner or await registry.is_dead(owner):
                    self._owners.pop(object_id.key, None)
                    return "err", HostUnavailable(f"owner {owner} lapsed; retrying").to_dict()
                if wait >= longest:
                    # The call or its reply may have been lost (the transport is at most
                    # once): send the same attempt again. The owner ignores a copy of an
                    # attempt it is still serving, answers one it served from its reply
                    # cache, and otherwise finds the call id among its recorded calls.
                    await transport.send(channel, dict(message, retry=True))
                wait = min(wait * 2, longest)
        finally:
            self._pending.pop(reply_key, None)

    async def handle_message(self, message: dict[str, Any]) -> None:
        """Transport handler: replies resolve waiting calls; calls run on this host."""
        kind = message.get("type")
        if kind == "durable.reply":
            pending = self._pending.get(message.get("reply_key", ""))
            if pending is not None and not pending.future.done():
                pending.future.set_result((message["status"], message["body"]))
        elif kind == "durable.frames":
            from .consumers import get_front

            get_front().deliver(message)
        elif kind == "durable.call" and self.host is not None:
            # Attempts are known by object and key: the same call id (an Idempotency-Key
            # a client reuses) sent to another object is another call.
            reply_key = _serving_key(message)
            if reply_key in self._serving_keys:
                return  # a copy of an attempt still being served
            served = self._served.get(reply_key)
            if served is not None:  # a copy of an attempt whose reply was lost
                self._spawn(self._send_quietly(message["reply_to"], served))
                return
            self._serving_keys.add(reply_key)
            self._spawn(self._serve_remote(message))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._serving.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._serving.discard)

    async def _send_quietly(self, channel: str, message: dict[str, Any]) -> None:
        try:
            await self.host.transport.send(channel, message)  # type: ignore[union-attr]
        except Exception as exc:  # the caller's deadline turns this into a retry
            logger.warning("message to %s not sent: %s", channel, exc)

    async def _serve_remote(self, message: dict[str, Any]) -> None:
        try:
            await self._serve_remote_call(message)
        finally:
            self._serving_keys.discard(_serving_key(message))

    async def _serve_remote_call(self, message: dict[str, Any]) -> None:
        object_id = ObjectId(message["namespace"], message["id"], message.get("name"))
        # Bounded like the caller's own wait: an attempt never occupies the owner forever.
        limit = float(get_setting("CALL_TIMEOUT")) + float(get_setting("TURN_TIMEOUT"))
        try:
            async with asyncio.timeout(limit):
                status, body = await self._deliver_local(
                    object_id,
                    message["kind"],
                    message["method"],
                    message["payload"],
                    message["call_id"],
                    bool(message.get("retry")),
                    bool(message.get("lifecycle")),
                )
        except TimeoutError:
            error = CallTimeout(f"{object_id.key}: no result within {limit:.0f} s")
            status, body = "err", error.to_dict()
        reply = {
            "type": "durable.reply",
            "reply_key": message["reply_key"],
            "status": status,
            "body": body,
        }
        self._served[_serving_key(message)] = reply
        if len(self._served) > _SERVED_CACHE:
            self._served.popitem(last=False)
        await self._send_quietly(message["reply_to"], reply)


def _serving_key(message: dict[str, Any]) -> str:
    """How an owner knows an attempt: its object and its reply key."""
    return f"{message.get('namespace')}:{message.get('id')}|{message.get('reply_key', '')}"


class _PendingCall:
    """A remote attempt awaiting its reply."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future


_router = Router()
_bound_router: contextvars.ContextVar[Router | None] = contextvars.ContextVar(
    "durable_router", default=None
)


def get_router() -> Router:
    """The router of the code running now: the process-wide one, unless a host bound
    its own into this context (several hosts in one process: the simulation)."""
    return _bound_router.get() or _router


def bind_router(router: Router) -> None:
    """Make ``router`` the one ``get_router()`` returns in the current context."""
    _bound_router.set(router)
