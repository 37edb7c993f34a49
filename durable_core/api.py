"""Staff-only REST inspection of the runtime (CONTRACT § Inspection)."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse

from .host import get_host


def _staff_only(request: HttpRequest) -> JsonResponse | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return JsonResponse(
            {"error": "not_authenticated", "message": "log in as staff"}, status=401
        )
    if not user.is_staff:
        return JsonResponse({"error": "forbidden", "message": "staff only"}, status=403)
    return None


async def hosts(request: HttpRequest) -> JsonResponse:
    """``GET /api/hosts/``: every known host; ``owner`` in a lease is one of these ids."""
    user = await request.auser()
    request.user = user
    refused = _staff_only(request)
    if refused is not None:
        return refused
    if request.method != "GET":
        return JsonResponse({"error": "method_not_allowed", "message": "use GET"}, status=405)
    host = get_host()
    if host is None:
        return JsonResponse({"hosts": []})
    if host.registry is None:  # embedded: this process is the only host
        entry = {
            "id": host.host_id,
            "pid": os.getpid(),
            "channel": None,
            "started": host.started_at,
            "objects": len(host.active),
            "alive": host.running,
        }
        return JsonResponse({"hosts": [entry]})
    listed = await host.registry.list_hosts()
    keys = ("id", "pid", "channel", "started", "objects", "alive")
    return JsonResponse({"hosts": [{k: h.get(k) for k in keys} for h in listed]})
