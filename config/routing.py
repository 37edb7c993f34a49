"""WebSocket routes of the project (the apps add theirs as they land)."""

websocket_urlpatterns: list = []
