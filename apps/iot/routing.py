"""WebSocket routes of the iot app.

Each route names the socket's role (the device itself, or a dashboard watching it) in
its default kwargs, and the device object reads it from there: the role never depends on
what a device id looks like (a device named ``watch`` connects as a device).
"""

from django.urls import path

from .consumers import DeviceConsumer

websocket_urlpatterns: list = [
    path("ws/devices/<str:device_id>/", DeviceConsumer.as_asgi(), {"role": "device"}),
    path("ws/devices/<str:device_id>/watch/", DeviceConsumer.as_asgi(), {"role": "watch"}),
]
