"""WebSocket routes of the iot app."""

websocket_urlpatterns: list = []
