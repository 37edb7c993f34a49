"""The demo home page and a small counter API showing a durable object at work."""

from __future__ import annotations

import json
import logging
import re

from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from ninja import Router, Schema

from durable_core.api import ErrorOut
from durable_core.exceptions import DurableError
from durable_core.registry import ADDRESS_NAME_RE, get_namespace
from durable_core.web import runtime_error_response

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

# The four reference apps on the home page: namespace prefix (app label), page, blurb.
APPS = [
    ("chat", "Chat", "/chat/", "Rooms with history, presence and exactly-once sends."),
    ("collab_doc", "Collaborative editor", "/docs/", "One Yjs document per object."),
    ("ratelimit", "Rate limiter", "/ratelimit/", "Exact limits across processes."),
    ("iot", "Device twins", "/devices/", "Desired, reported and delta state, offline alarms."),
]

logger = logging.getLogger(__name__)


async def home(request: HttpRequest):
    """The four reference apps with live figures, and a live counter."""
    from asgiref.sync import sync_to_async

    cards = await app_figures()
    return await sync_to_async(render)(request, "home.html", {"cards": cards})


async def app_figures() -> list[dict]:
    """Per app: stored objects and active ones (records and live hosts, by namespace
    prefix), sockets (online users or connected devices). Never the apps' internals."""
    from durable_core.inspection import alive_figures, anamespaces

    try:
        namespaces = await anamespaces()
        live = await alive_figures()
        available = True
    except Exception:  # the home page renders even when Redis or the database is down
        logger.warning("home page figures unavailable", exc_info=True)
        namespaces, live, available = [], {"sockets": {}, "socket_objects": {}}, False
    cards = []
    for label, title, url, blurb in APPS:
        mine = [n for n in namespaces if n["namespace"].split(".", 1)[0] == label]

        def total(name: str, mine_names=frozenset(n["namespace"] for n in mine)) -> int:
            return sum(v for ns, v in live[name].items() if ns in mine_names)

        cards.append(
            {
                "label": label,
                "title": title,
                "url": url,
                "blurb": blurb,
                "objects": sum(n["objects"] for n in mine),
                "active": sum(n["active"] for n in mine),
                "sockets": total("sockets"),
                "socket_objects": total("socket_objects"),
                "available": available,
            }
        )
    return cards


demo_router = Router(tags=["demo"])


class CounterOut(Schema):
    name: str
    value: int


# A bad counter name (404), a runtime unable to answer now (503 + Retry-After); an
# increment also checks its body and Idempotency-Key (400).
_COUNTER = {200: CounterOut, 404: ErrorOut, 503: ErrorOut}


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


_COUNTER_DOC = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"by": {"type": "integer", "minimum": 1, "maximum": 1000}},
                }
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "retrying with the same key applies the increment once",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        }
    ],
}


@demo_router.get("/counter/{name}", response=_COUNTER, summary="Read a demo counter")
async def counter_value(request: HttpRequest, name: str):
    """The value of the durable counter ``name`` (``demo.Counter``)."""
    return await _counter(request, name, post=False)


@demo_router.post(
    "/counter/{name}",
    response={**_COUNTER, 400: ErrorOut, 413: ErrorOut},
    summary="Increment a demo counter",
    openapi_extra=_COUNTER_DOC,
)
async def counter_increment(request: HttpRequest, name: str):
    """Add ``by`` (default 1) to the durable counter ``name``; returns the new value."""
    return await _counter(request, name, post=True)


async def _counter(request: HttpRequest, name: str, *, post: bool) -> JsonResponse:
    if not ADDRESS_NAME_RE.fullmatch(name):
        return _error(404, "not_found", "counter names are 1-64 chars of [A-Za-z0-9_-]")
    stub = get_namespace("demo.Counter").get_by_name(name)
    try:
        if post:
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
        else:
            value = await stub.value()
    except DurableError as exc:
        if exc.retryable:  # 503 with Retry-After (the object's retry hint when it gave one)
            return runtime_error_response(exc)
        return _error(500, "error", str(exc))
    return JsonResponse({"name": name, "value": value})


@csrf_exempt  # an unknown route answers 404 whatever the method, not a CSRF 403
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown routes under /api/: a JSON 404, never an HTML page."""
    return _error(404, "not_found", f"no API route {request.path}")
