"""The WebSocket front of the process_app Room objects."""

from durable_core.consumers import DurableObjectConsumer
from durable_core.registry import get_namespace


class RoomConsumer(DurableObjectConsumer):
    def get_object_stub(self):
        name = self.scope["url_route"]["kwargs"]["name"]
        return get_namespace("process_app.Room").get_by_name(name)
