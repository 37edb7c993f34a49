"""WebSocket routes of the project: every app's routes, in one list, then a catch-all
that refuses unknown paths cleanly."""

from django.urls import re_path

from apps.chat.routing import websocket_urlpatterns as chat
from apps.collab_doc.routing import websocket_urlpatterns as collab_doc
from apps.iot.routing import websocket_urlpatterns as iot
from apps.ratelimit.routing import websocket_urlpatterns as ratelimit
from durable_core.consumers import NotFoundConsumer

websocket_urlpatterns: list = [
    *chat,
    *collab_doc,
    *ratelimit,
    *iot,
    re_path(r"", NotFoundConsumer.as_asgi()),
]
