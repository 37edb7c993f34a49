"""A project's urls.py as CONTRACT § Adopting asks for: durable_core's URLs included under
``durable/``, nothing of the demo (no demo API, and its JSON-error middleware only looks
at ``/api/``)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("durable/", include("durable_core.urls")),
]
