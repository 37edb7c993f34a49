"""How calls and replies travel between processes in cluster mode (DESIGN §3).

One interface, two implementations, chosen by the ``TRANSPORT`` setting:
``ChannelLayerTransport`` sends through the Channels layer (each process receives on its
own channel), ``RedisPubSubTransport`` publishes straight to a per-process Redis channel.
``bench/cluster_calls.py`` measures both against a raw redis-py PUBLISH/SUBSCRIBE round trip.
Both are at-most-once: a message to a process that died is lost, and the router's
deadline and owner checks turn that into a retry with the same call id.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ._tasks import cancel_and_wait

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


class Transport(abc.ABC):
    """Sends JSON-compatible messages to other processes' channels and receives on ours."""

    channel: str

    @abc.abstractmethod
    async def start(self, handler: Handler) -> None:
        """Open this process's channel and pass every received message to ``handler``."""

    @abc.abstractmethod
    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to ``channel`` (fire and forget)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop receiving and release connections."""


class _ReceiveLoop:
    """Runs a receive coroutine forever, handing messages to the handler."""

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None
        self._handler: Handler | None = None

    def run(self, handler: Handler, receive: Callable[[], Awaitable[dict | None]]) -> None:
        self._handler = handler

        async def loop() -> None:
            while True:
                try:
                    message = await receive()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("transport receive failed: %s; retrying", exc)
                    await asyncio.sleep(0.2)
                    continue
                if message is None:
                    continue
                try:
                    result = handler(message)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    logger.exception("handling a transport message failed")

        self._task = asyncio.create_task(loop(), name="durable:transport")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])


class ChannelLayerTransport(Transport):
    """Messages through the configured Channels layer (e.g. channels-redis)."""

    def __init__(self, layer_alias: str = "default") -> None:
        from channels.layers import get_channel_layer

        self.layer = get_channel_layer(layer_alias)
        self._loop = _ReceiveLoop()

    async def start(self, handler: Handler) -> None:
        self.channel = await self.layer.new_channel("durable.")
        self._loop.run(handler, lambda: self.layer.receive(self.channel))

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.layer.send(channel, message)

    async def stop(self) -> None:
        await self._loop.stop()


class RedisPubSubTransport(Transport):
    """Messages as JSON published on a per-process Redis channel.

    The subscription is checked every few seconds (``PUBSUB NUMSUB``) and rebuilt when
    it is gone: after a dropped connection, redis-py may stay connected yet subscribed
    to nothing if its resubscription failed once, and the host would go deaf for good.
    """

    HEALTH_CHECK_SECONDS = 2.0

    def __init__(self, redis_url: str, prefix: str) -> None:
        from .host import make_redis_client

        self.client = make_redis_client(redis_url)
        self.channel = f"{prefix}:inbox:{uuid.uuid4().hex}"
        self._pubsub = None
        self._loop = _ReceiveLoop()
        self._checked = 0.0

    async def _subscribe(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)
        self._pubsub = pubsub

    async def start(self, handler: Handler) -> None:
        await self._subscribe()
        loop = asyncio.get_running_loop()

        async def receive() -> dict | None:
            if self._pubsub is None:
                await self._subscribe()
            try:
                message = await self._pubsub.get_message(timeout=self.HEALTH_CHECK_SECONDS)
            except Exception:
                self._pubsub = None  # rebuilt on the next receive (after the loop's pause)
                raise
            if message is None:
                if loop.time() - self._checked > self.HEALTH_CHECK_SECONDS:
                    self._checked = loop.time()
                    [(_name, count)] = await self.client.pubsub_numsub(self.channel)
                    if not count:
                        logger.warning(
                            "inbox %s lost its subscription; resubscribing", self.channel
                        )
                        await self._subscribe()
                return None
            if message.get("type") != "message":
                return None
            return json.loads(message["data"])

        self._loop.run(handler, receive)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.client.publish(channel, json.dumps(message, separators=(",", ":")))

    async def stop(self) -> None:
        await self._loop.stop()
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self.client.aclose()


def get_transport() -> Transport:
    """The transport named by the ``TRANSPORT`` setting."""
    from .conf import get_setting

    kind = str(get_setting("TRANSPORT"))
    if kind == "redis-pubsub":
        return RedisPubSubTransport(get_setting("REDIS_URL"), get_setting("KEY_PREFIX"))
    if kind == "channels" or kind.startswith("channels:"):
        # "channels" uses the default layer, "channels:<alias>" another CHANNEL_LAYERS entry
        return ChannelLayerTransport(kind.partition(":")[2] or "default")
    raise ValueError(f"unknown DURABLE_OBJECTS['TRANSPORT'] {kind!r}")
