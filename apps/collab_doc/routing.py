"""WebSocket routes of the collab_doc app."""

websocket_urlpatterns: list = []
