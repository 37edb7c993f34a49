"""The demo's routes plus small JSON views on the ``process_app`` objects."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as demo_urlpatterns
from durable_core.exceptions import DurableError
from durable_core.ids import ObjectId
from durable_core.models import ObjectRecord
from durable_core.registry import get_namespace

NAMESPACE = "process_app.Alarmed"


def _body(request: HttpRequest) -> dict:
    return json.loads(request.body or b"{}")


@csrf_exempt
async def schedule(request: HttpRequest, name: str) -> JsonResponse:
    """POST {"delay": s}: set the object's alarm."""
    stub = get_namespace(NAMESPACE).get_by_name(name)
    return JsonResponse({"alarm_at": await stub.schedule(float(_body(request)["delay"]))})


@csrf_exempt
async def fail_times(request: HttpRequest, name: str) -> JsonResponse:
    """POST {"times": n}: make the first n alarm runs raise."""
    stub = get_namespace(NAMESPACE).get_by_name(name)
    await stub.set_fail_times(int(_body(request)["times"]))
    return JsonResponse({"ok": True})


@csrf_exempt
async def evict(request: HttpRequest, name: str) -> JsonResponse:
    """POST: evict the object after this call (its alarm stays scheduled)."""
    await get_namespace(NAMESPACE).get_by_name(name).evict()
    return JsonResponse({"ok": True})


async def firings(request: HttpRequest, name: str) -> JsonResponse:
    """GET: the object's committed firings (activates the object)."""
    stub = get_namespace(NAMESPACE).get_by_name(name)
    return JsonResponse({"firings": await stub.firings()})


async def alarm_index(request: HttpRequest, name: str) -> JsonResponse:
    """GET: the alarm index entry of the object, read without activating it."""
    object_id = ObjectId.from_name(NAMESPACE, name)
    record = await ObjectRecord.objects.filter(
        namespace=NAMESPACE, object_id=object_id.hex
    ).afirst()
    return JsonResponse(
        {"exists": record is not None, "alarm_at": record.alarm_at if record else None}
    )


@csrf_exempt
async def slow_counter(request: HttpRequest, name: str) -> JsonResponse:
    """POST {"delay": s} increments (``Idempotency-Key`` is the call id), GET reads.

    Errors map as on the demo counter: retryable ones are 503, others 500.
    """
    stub = get_namespace("process_app.SlowCounter").get_by_name(name)
    try:
        if request.method == "POST":
            delay = float(_body(request).get("delay", 0))
            key = request.headers.get("Idempotency-Key")
            value = await stub.call("increment", delay, call_id=key)
        else:
            value = await stub.value()
    except DurableError as exc:
        status = 503 if exc.retryable else 500
        return JsonResponse({"error": type(exc).__name__, "message": str(exc)}, status=status)
    return JsonResponse({"name": name, "value": value})


urlpatterns = [
    *demo_urlpatterns,
    path("t/alarmed/<str:name>/schedule", schedule),
    path("t/alarmed/<str:name>/fail-times", fail_times),
    path("t/alarmed/<str:name>/evict", evict),
    path("t/alarmed/<str:name>/firings", firings),
    path("t/alarmed/<str:name>/alarm-index", alarm_index),
    path("t/slow/<str:name>", slow_counter),
]


@csrf_exempt
async def room(request: HttpRequest, name: str, action: str) -> JsonResponse:
    """GET info, or POST {"text"} to broadcast, on the Room ``name``."""
    stub = get_namespace("process_app.Room").get_by_name(name)
    if action == "broadcast":
        return JsonResponse({"seq": await stub.broadcast(_body(request).get("text", ""))})
    return JsonResponse(await stub.info())


urlpatterns += [path("t/room/<str:name>/<str:action>", room)]
