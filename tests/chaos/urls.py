"""Routes of the chaos servers: the process tests' routes plus JSON views on the chaos
objects. Errors: retryable ones are 503 (the client retries with the same call id),
others 500 (the client counts the operation as indeterminate)."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from durable_core.exceptions import DurableError
from durable_core.ids import ObjectId
from durable_core.registry import get_namespace
from tests.process_app.urls import urlpatterns as process_urlpatterns


def _error(exc: DurableError) -> JsonResponse:
    status = 503 if exc.retryable else 500
    return JsonResponse({"error": type(exc).__name__, "message": str(exc)}, status=status)


@csrf_exempt
async def register(request: HttpRequest, name: str) -> JsonResponse:
    """POST {"f": "read"|"write"|"cas", "value"?, "old"?, "new"?}; ``Idempotency-Key`` is
    the call id of writes, so a retry after a timeout applies once."""
    body = json.loads(request.body or b"{}")
    stub = get_namespace("chaos.Register").get_by_name(name)
    key = request.headers.get("Idempotency-Key")
    try:
        if body["f"] == "read":
            result = await stub.call("read")
        elif body["f"] == "write":
            result = await stub.call("write", body["value"], call_id=key)
        else:
            result = await stub.call("cas", body["old"], body["new"], call_id=key)
    except DurableError as exc:
        return _error(exc)
    return JsonResponse({"result": result})


@csrf_exempt
async def ledger(request: HttpRequest, name: str) -> JsonResponse:
    """POST {"op": id} applies increment ``op`` (its id is the call id); GET lists them
    (``?count`` : only the count)."""
    stub = get_namespace("chaos.Ledger").get_by_name(name)
    try:
        if request.method == "POST":
            op = json.loads(request.body)["op"]
            result = await stub.call("add", op, call_id=op)
        elif "count" in request.GET:
            result = await stub.call("count")
        else:
            result = await stub.call("applied")
    except DurableError as exc:
        return _error(exc)
    return JsonResponse({"result": result})


async def object_key(request: HttpRequest, namespace: str, name: str) -> JsonResponse:
    """GET: the key (``ns:hex``) the servers give the object named ``name``."""
    return JsonResponse({"key": ObjectId.from_name(namespace, name).key})


urlpatterns = [
    *process_urlpatterns,
    path("c/register/<str:name>", register),
    path("c/ledger/<str:name>", ledger),
    path("c/key/<str:namespace>/<str:name>", object_key),
]
