"""URL routes of the demo project."""

from django.contrib import admin
from django.urls import path

from config import views
from durable_core import api as durable_api
from durable_core.views import healthz

urlpatterns = [
    path("", views.home, name="home"),
    path("api/demo/counter/<str:name>", views.counter, name="demo-counter"),
    path("healthz", healthz, name="healthz"),
    path("api/hosts/", durable_api.hosts, name="durable-hosts"),
    path("admin/", admin.site.urls),
]
