"""WebSocket fronts of the device twins: the device's socket and the dashboards' one.

Both address the device's object; the route's ``role`` kwarg tells them apart, and the
object tags the socket ``device`` or ``watch``.
"""

from apps.ratelimit.creation import arefuse_socket
from durable_core.consumers import DurableObjectConsumer

from .devices import get_device_stub


class DeviceConsumer(DurableObjectConsumer):
    """``/ws/devices/<id>/`` and ``/ws/devices/<id>/watch/``."""

    max_message_bytes = 64 * 1024

    def get_object_stub(self):
        return get_device_stub(self.scope["url_route"]["kwargs"]["device_id"])

    async def websocket_connect(self, message: dict) -> None:
        if not await arefuse_socket(self):  # a new device costs a creation (issue 16 §9)
            await super().websocket_connect(message)
