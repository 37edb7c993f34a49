"""Public runtime endpoints: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .conf import get_setting, is_cluster_mode
from .host import get_host


@csrf_exempt  # GET only; other methods get a JSON 405, not a CSRF page
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 with mode, host id and pid; 503 while no host runs here."""
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"error": "method_not_allowed", "message": "use GET"}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    host = get_host()
    body = {
        "ok": host is not None and host.running,
        "mode": "cluster" if is_cluster_mode() else "embedded",
        "host": host.host_id if host else None,
        "pid": os.getpid(),
    }
    return JsonResponse(body, status=200 if body["ok"] else 503)


async def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text of this process's runtime metrics. Public unless
    ``DURABLE_OBJECTS["METRICS_PUBLIC"]`` is false; then staff sessions only."""
    from . import metrics as runtime_metrics

    if not get_setting("METRICS_PUBLIC"):
        user = await request.auser()
        if not user.is_authenticated:
            return JsonResponse(
                {"error": "not_authenticated", "message": "log in as a staff user"}, status=401
            )
        if not user.is_staff:
            return JsonResponse({"error": "forbidden", "message": "staff only"}, status=403)
    body, content_type = runtime_metrics.render()
    return HttpResponse(body, content_type=content_type)


@csrf_exempt  # any method: the answer is the same JSON 404
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown routes under the API prefix: a JSON 404, never Django's HTML page."""
    return JsonResponse(
        {"error": "not_found", "message": f"no API route {request.path}"}, status=404
    )
