"""WebSocket routes of the collab_doc app.

``/ws/docs/<name>/`` (CONTRACT); the trailing slash is optional because a stock
``WebsocketProvider(serverUrl, room)`` connects to ``serverUrl + "/" + room``.
"""

from django.urls import re_path

from .consumers import DocumentConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/docs/(?P<name>[^/]+)/?$", DocumentConsumer.as_asgi()),
]
