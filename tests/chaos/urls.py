"""Routes of the chaos servers: the process tests' routes plus JSON views on the chaos
objects, and a chaos-only switch for failpoints (never in the demo project). Errors:
retryable ones are 503 (the client retries with the same call id), ``TurnTimeout`` is
409 (the turn was rolled back: a definite failure), others 500."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from durable_core import failpoints
from durable_core.exceptions import DurableError, TurnTimeout
from durable_core.ids import ObjectId
from durable_core.registry import get_namespace
from tests.process_app.urls import urlpatterns as process_urlpatterns

logger = logging.getLogger(__name__)


def _error(exc: DurableError) -> JsonResponse:
    status = 409 if isinstance(exc, TurnTimeout) else 503 if exc.retryable else 500
    return JsonResponse({"error": type(exc).__name__, "message": str(exc)}, status=status)


@csrf_exempt
async def register(request: HttpRequest, name: str) -> JsonResponse:
    """POST {"f": "read"|"write"|"slow_write"|"cas", "value"?, "seconds"?, "old"?, "new"?};
    ``Idempotency-Key`` is the call id of writes, so a retry after a timeout applies once."""
    body = json.loads(request.body or b"{}")
    stub = get_namespace("chaos.Register").get_by_name(name)
    key = request.headers.get("Idempotency-Key")
    try:
        if body["f"] == "read":
            result = await stub.call("read")
        elif body["f"] == "write":
            result = await stub.call("write", body["value"], call_id=key)
        elif body["f"] == "slow_write":
            result = await stub.call("slow_write", body["value"], body["seconds"], call_id=key)
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


@csrf_exempt
async def scratch(request: HttpRequest, name: str) -> JsonResponse:
    """POST {"f": "add", "op": id} (its id is the call id) or {"f": "destroy"} (the
    ``Idempotency-Key`` is the call id); GET lists the applied ids (``?count``: only
    the count)."""
    stub = get_namespace("chaos.Scratch").get_by_name(name)
    try:
        if request.method == "POST":
            body = json.loads(request.body)
            if body["f"] == "add":
                result = await stub.call("add", body["op"], call_id=body["op"])
            else:
                key = request.headers.get("Idempotency-Key")
                result = await stub.call("destroy", call_id=key)
        elif "count" in request.GET:
            result = await stub.call("count")
        else:
            result = await stub.call("applied")
    except DurableError as exc:
        return _error(exc)
    return JsonResponse({"result": result})


@csrf_exempt
async def failpoint(request: HttpRequest) -> JsonResponse:
    """POST {"name", "seconds", "probability"}: in this server process, the failpoint
    ``name`` raises SQLite's disk-full error (with that probability) for ``seconds``,
    then is switched off and its hits logged."""
    body = json.loads(request.body)
    name, seconds = body["name"], float(body["seconds"])
    try:
        point = failpoints.enable(
            name,
            error=lambda: sqlite3.OperationalError("database or disk is full"),
            probability=float(body.get("probability", 1.0)),
        )
    except ValueError as exc:
        return JsonResponse({"error": "ValueError", "message": str(exc)}, status=400)

    def switch_off() -> None:
        failpoints.disable(name)
        logger.warning("chaos failpoint %s off after %s hits", name, point.hits)

    asyncio.get_running_loop().call_later(seconds, switch_off)
    logger.warning("chaos failpoint %s on for %.1f s", name, seconds)
    return JsonResponse({"name": name, "seconds": seconds})


async def object_key(request: HttpRequest, namespace: str, name: str) -> JsonResponse:
    """GET: the key (``ns:hex``) the servers give the object named ``name``."""
    return JsonResponse({"key": ObjectId.from_name(namespace, name).key})


urlpatterns = [
    *process_urlpatterns,
    path("c/register/<str:name>", register),
    path("c/ledger/<str:name>", ledger),
    path("c/scratch/<str:name>", scratch),
    path("c/failpoint", failpoint),
    path("c/key/<str:namespace>/<str:name>", object_key),
]
