"""WebSocket routes of the project: every app's routes, in one list."""

from apps.chat.routing import websocket_urlpatterns as chat
from apps.collab_doc.routing import websocket_urlpatterns as collab_doc
from apps.iot.routing import websocket_urlpatterns as iot
from apps.ratelimit.routing import websocket_urlpatterns as ratelimit

websocket_urlpatterns: list = [*chat, *collab_doc, *ratelimit, *iot]
