"""The demo home page and a small counter API showing a durable object at work."""

from __future__ import annotations

import json
import re

from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from durable_core.exceptions import DurableError
from durable_core.registry import get_namespace

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def home(request: HttpRequest):
    """The four reference apps and a live counter."""
    return render(request, "home.html")


@csrf_exempt
async def counter(request: HttpRequest, name: str) -> JsonResponse:
    """GET reads, POST increments the durable counter ``name``."""
    if not _NAME.fullmatch(name):
        return _error(404, "not_found", "counter names are 1-64 chars of [A-Za-z0-9_-]")
    stub = get_namespace("demo.Counter").get_by_name(name)
    try:
        if request.method == "POST":
            by = 1
            if request.body:
                try:
                    by = json.loads(request.body).get("by", 1)
                except (ValueError, AttributeError):
                    return _error(400, "bad_request", "body must be a JSON object")
            if isinstance(by, bool) or not isinstance(by, int) or not 1 <= by <= 1000:
                return _error(400, "bad_request", "'by' must be an integer from 1 to 1000")
            # An Idempotency-Key makes a retried POST apply once: it is the call id.
            key = request.headers.get("Idempotency-Key")
            if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
                return _error(400, "bad_request", "Idempotency-Key: 1-128 chars of [A-Za-z0-9_.:-]")
            value = await stub.call("increment", by, call_id=key)
        elif request.method == "GET":
            value = await stub.value()
        else:
            return _error(405, "method_not_allowed", "use GET or POST")
    except DurableError as exc:
        status = 503 if exc.retryable else 500
        response = _error(status, "unavailable" if exc.retryable else "error", str(exc))
        if exc.retryable:
            response["Retry-After"] = "1"
        return response
    return JsonResponse({"name": name, "value": value})


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown routes under /api/: a JSON 404, never an HTML page."""
    return _error(404, "not_found", f"no API route {request.path}")
