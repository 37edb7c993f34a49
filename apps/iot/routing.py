"""WebSocket routes of the iot app."""

from django.urls import path

from .consumers import DeviceConsumer

websocket_urlpatterns: list = [
    path("ws/devices/<str:device_id>/", DeviceConsumer.as_asgi()),
    path("ws/devices/<str:device_id>/watch/", DeviceConsumer.as_asgi()),
]
