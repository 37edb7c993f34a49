"""ASGI app of the test processes: the project's, plus the Room WebSocket route."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.process_settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from durable_core.asgi import DurableLifespan  # noqa: E402
from tests.process_app.consumers import RoomConsumer  # noqa: E402

application = DurableLifespan(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": URLRouter([path("ws/room/<str:name>/", RoomConsumer.as_asgi())]),
        }
    )
)
