"""Pages of the ratelimit app."""

from django.urls import path  # noqa: F401

app_name = "ratelimit"
urlpatterns: list = []
