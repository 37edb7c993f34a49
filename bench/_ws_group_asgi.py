"""The baseline of bench/ws_broadcast.py: a plain Channels group broadcast, no durable_core.

Every WebSocket joins one group; a ``{"type": "broadcast", "text": ...}`` message from
any of them is sent to the whole group with ``channel_layer.group_send`` (the configured
RedisChannelLayer), and each consumer writes the same frame as the ``process_app.Room``
object does. Served by ``daphne bench._ws_group_asgi:application``.
"""

import json
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.process_settings")
django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench-broadcast"
_sent = 0  # per process: a stand-in for the Room's seq, so frames are the same size


class GroupConsumer(AsyncWebsocketConsumer):
    """Joins the group on connect; a broadcast message goes to every member."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        message = json.loads(text_data or "{}")
        if message.get("type") == "broadcast":
            name = self.scope["query_string"].decode().partition("name=")[2] or "anon"
            await self.channel_layer.group_send(
                GROUP, {"type": "room.broadcast", "text": message.get("text", ""), "from": name}
            )

    async def room_broadcast(self, event: dict) -> None:
        global _sent
        _sent += 1
        frame = {"type": "broadcast", "seq": _sent, "text": event["text"], "from": event["from"]}
        await self.send(text_data=json.dumps(frame))


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws/room/<str:name>/", GroupConsumer.as_asgi())]),
    }
)
