"""The project's REST API: one django-ninja API under /api/, OpenAPI UI at /api/docs.

Each app contributes a router; errors of every route share the contract's JSON shape.
"""

from ninja import NinjaAPI

from durable_core.web import install_error_handlers

api = NinjaAPI(
    title="durable-django",
    version="0.1",
    description="Durable objects for Django: the reference apps' REST APIs and inspection.",
    docs_url="/docs",
    urls_namespace="api",
)
install_error_handlers(api)

api.add_router("/objects/", "durable_core.api.router")
api.add_router("/hosts/", "durable_core.api.hosts_router")
api.add_router("/demo/", "config.views.demo_router")
api.add_router("/chat/", "apps.chat.api.router")
api.add_router("/documents/", "apps.collab_doc.api.router")
api.add_router("/ratelimit/", "apps.ratelimit.api.router")
api.add_router("/devices/", "apps.iot.api.router")
