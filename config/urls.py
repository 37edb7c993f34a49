"""URL routes of the demo project."""

from django.contrib import admin
from django.urls import include, path, re_path

from config import views
from config.api import api
from durable_core.views import healthz, metrics

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("chat/", include("apps.chat.urls")),
    path("docs/", include("apps.collab_doc.urls")),
    path("ratelimit/", include("apps.ratelimit.urls")),
    path("devices/", include("apps.iot.urls")),
    # Anything else under /api/ answers in the contract's JSON error shape.
    re_path(r"^api/", views.api_not_found),
]
