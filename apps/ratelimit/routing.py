"""WebSocket routes of the ratelimit app."""

websocket_urlpatterns: list = []
