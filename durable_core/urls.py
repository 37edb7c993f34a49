"""URLs of durable_core for a project's ``urls.py``.

    path("durable/", include("durable_core.urls")),

serves ``durable/healthz``, ``durable/metrics`` and the staff inspection API under
``durable/api/`` (OpenAPI UI at ``durable/api/docs``). The API is a django-ninja API of
its own (``api`` below, URL namespace ``durable_core_api``: no app namespace around it,
since django-ninja reverses its own URLs from the root) with the contract's JSON error
answers, since the adopting project has neither the demo's API nor its middleware. A
project with its own NinjaAPI can mount the routers there instead and skip this module:

    api.add_router("/objects/", "durable_core.api.router")
    api.add_router("/hosts/", "durable_core.api.hosts_router")
"""

from __future__ import annotations

from django.urls import path, re_path
from ninja import NinjaAPI

from . import __version__, views
from .web import install_error_handlers, json_errors

api = NinjaAPI(
    title="durable_core",
    version=__version__,
    description="Durable objects for Django: staff inspection and operations of the runtime.",
    docs_url="/docs",
    urls_namespace="durable_core_api",
)
install_error_handlers(api)
api.add_router("/objects/", "durable_core.api.router")
api.add_router("/hosts/", "durable_core.api.hosts_router")


def _api_urls() -> tuple[list, str, str]:
    """``api.urls`` with every view's error answers in JSON (a 405, a CSRF refusal)."""
    patterns, app, namespace = api.urls
    for pattern in patterns:
        pattern.callback = json_errors(pattern.callback)
    return patterns, app, namespace


urlpatterns = [
    path("healthz", views.healthz, name="durable_core_healthz"),
    path("metrics", views.metrics, name="durable_core_metrics"),
    path("api/", _api_urls()),
    re_path(r"^api/", views.api_not_found),
]
