"""Pages of the iot app."""

from django.urls import path  # noqa: F401

app_name = "iot"
urlpatterns: list = []
