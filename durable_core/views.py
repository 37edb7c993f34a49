"""Public runtime endpoints: ``/healthz``."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse

from .conf import is_cluster_mode
from .host import get_host


async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 with mode, host id and pid; 503 while no host runs here."""
    host = get_host()
    body = {
        "ok": host is not None and host.running,
        "mode": "cluster" if is_cluster_mode() else "embedded",
        "host": host.host_id if host else None,
        "pid": os.getpid(),
    }
    return JsonResponse(body, status=200 if body["ok"] else 503)
