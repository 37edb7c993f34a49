"""Pages of the iot app: the device list and one device's page."""

from django.urls import path

from . import views

app_name = "iot"
urlpatterns: list = [
    path("", views.device_list, name="list"),
    path("<str:device_id>/", views.device_page, name="device"),
]
