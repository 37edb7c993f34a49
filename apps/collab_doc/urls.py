"""Pages of the collab_doc app."""

from django.urls import path  # noqa: F401

app_name = "collab_doc"
urlpatterns: list = []
