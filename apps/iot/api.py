"""REST API of the device twins, mounted at ``/api/devices/`` (CONTRACT § IoT).

Anonymous JSON, no CSRF (no cookie authentication). Bodies are parsed here rather than
by schemas so that each failure gets the contract's status: bad JSON or nesting deeper
than 6 → 400, a document over 8 KiB → 413, a version conflict → 409 with the current
version. The device object itself decides conflicts and sizes, one write at a time.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.db.models import Q, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from apps.ratelimit.creation import araise_if_refused
from durable_core.models import ObjectRecord
from durable_core.web import ApiError, client_ip

from . import twin as rules
from .devices import NAMESPACE, get_device_stub, new_device_stub
from .models import DeviceSummary
from .objects import MAX_QUERY_POINTS

router = Router(tags=["devices"])

MAX_BODY_BYTES = 64 * 1024  # anything larger cannot make a document under 8 KiB
MAX_TELEMETRY_POINTS = 1000  # per request
MAX_LISTED = 1000


def _stub(device_id: str):
    try:
        return get_device_stub(device_id)
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


def _json_body(request: HttpRequest) -> Any:
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(request.body)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "the body is not valid JSON") from None


def _answer(result: dict, status: int | None = None) -> JsonResponse:
    """The object's refusal as the contract's error, or its result."""
    if result["status"] >= 400:
        extra = {k: v for k, v in result.items() if k not in ("status", "error", "message")}
        raise ApiError(result["status"], result["error"], result["message"], **extra)
    body = {k: v for k, v in result.items() if k != "status"}
    return JsonResponse(body.get("twin", body), status=status or result["status"])


def _parse_update(request: HttpRequest) -> dict:
    try:
        return rules.parse_update(_json_body(request))
    except rules.TwinError as exc:
        raise ApiError(exc.status, exc.code, exc.message, **exc.extra) from None


@router.get("/", summary="Devices with their version and connection state")
async def list_devices(request: HttpRequest) -> JsonResponse:
    """From the object records (devices not deleted) joined with the summaries the
    device objects write; no object is activated, no file is read."""
    live = ObjectRecord.objects.filter(namespace=NAMESPACE, deleted=False).values("object_id")
    rows = DeviceSummary.objects.filter(object_id__in=Subquery(live)).filter(
        Q(has_twin=True) | Q(connected=True)
    )
    devices = [row.as_listed() async for row in rows.order_by("device_id")[:MAX_LISTED]]
    return JsonResponse({"devices": devices})


@router.post("/", summary="Create a device: a new twin (201), with a new id unless given")
async def create_device(request: HttpRequest) -> JsonResponse:
    body = _json_body(request) if request.body else {}
    if not isinstance(body, dict) or set(body) - {"device_id", "desired"}:
        raise ApiError(400, "bad_request", 'body: {"device_id"?: "...", "desired"?: {...}}')
    device_id = body.get("device_id")
    if device_id is None:
        stub = new_device_stub()
    elif not isinstance(device_id, str) or not rules.DEVICE_ID_RE.fullmatch(device_id):
        raise ApiError(400, "bad_request", "device_id: 1-64 chars of [A-Za-z0-9_-]")
    elif rules.HEX_ID_RE.fullmatch(device_id):
        raise ApiError(400, "bad_request", "a 64-hex device_id is an object id: omit it")
    else:
        stub = get_device_stub(device_id)
    try:
        update = rules.parse_update({"state": {"desired": body.get("desired") or {}}})
    except rules.TwinError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    await araise_if_refused(client_ip(request), stub.id)
    result = await stub.update(update, create_only=True)
    return _answer(result, 201)


@router.get("/{device_id}/twin", summary="The twin document")
async def get_twin(request: HttpRequest, device_id: str) -> JsonResponse:
    doc = await _stub(device_id).get_twin()
    if doc is None:
        raise ApiError(404, "not_found", f"device {device_id} has no twin")
    return JsonResponse(doc)


@router.patch("/{device_id}/twin", summary="Merge desired and/or reported state")
async def patch_twin(request: HttpRequest, device_id: str) -> JsonResponse:
    stub = _stub(device_id)
    update = _parse_update(request)
    token, field = update["client_token"], update["token_field"]
    await araise_if_refused(client_ip(request), stub.id)
    result = await stub.update(update)
    if result["status"] != 200:
        if token is not None:
            result[field] = token
        return _answer(result)
    doc = result["twin"]
    if token is not None:
        doc[field] = token  # echoed in the spelling sent (client_token or AWS's clientToken)
    return JsonResponse(doc)


@router.delete("/{device_id}/twin", summary="Delete the twin (the version count continues)")
async def delete_twin(request: HttpRequest, device_id: str) -> HttpResponse:
    """204 whether or not a twin was there: DELETE is idempotent (CONTRACT: → 204)."""
    await _stub(device_id).delete_twin()
    return HttpResponse(status=204)


@router.post("/{device_id}/telemetry", summary="Store telemetry (202)")
async def post_telemetry(request: HttpRequest, device_id: str) -> JsonResponse:
    """``{"metrics": {...}, "ts"?: t}``, or a batch ``{"points": [{"metrics", "ts"?}, ...]}``."""
    stub = _stub(device_id)
    body = _json_body(request)
    if isinstance(body, dict) and set(body) == {"points"}:
        points = body["points"]
        if not isinstance(points, list) or not 0 < len(points) <= MAX_TELEMETRY_POINTS:
            raise ApiError(400, "bad_request", f"points: a list of 1-{MAX_TELEMETRY_POINTS}")
    elif isinstance(body, dict) and "metrics" in body and not set(body) - {"metrics", "ts"}:
        points = [body]
    else:
        raise ApiError(400, "bad_request", 'body: {"metrics": {...}, "ts"?: t} or {"points"}')
    await araise_if_refused(client_ip(request), stub.id)
    return _answer(await stub.add_telemetry(points))


# Plain ASCII numbers only: str.isdigit() and float() also take "²" or Arabic-Indic
# digits, and int() refuses some of what isdigit() accepts (a 500 once).
_FLOAT_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_LIMIT_RE = re.compile(r"[0-9]{1,6}")


def _float_param(request: HttpRequest, name: str) -> float | None:
    raw = request.GET.get(name, "")
    if raw == "":
        return None
    # isfinite: 1e999 is well-formed, but float() makes it inf.
    if not _FLOAT_RE.fullmatch(raw) or not math.isfinite(value := float(raw)):
        raise ApiError(400, "bad_request", f"{name}: epoch seconds")
    return value


def _limit_param(request: HttpRequest) -> int:
    raw = request.GET.get("limit", "") or "1000"
    if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= MAX_QUERY_POINTS:
        raise ApiError(400, "bad_request", f"limit: 1-{MAX_QUERY_POINTS}")
    return int(raw)


@router.get("/{device_id}/telemetry", summary="Points of one metric, oldest first")
async def get_telemetry(request: HttpRequest, device_id: str) -> JsonResponse:
    """``?metric=temp&since=&until=&limit=`` (since and until inclusive; limit ≤ 10,000)."""
    stub = _stub(device_id)
    metric = request.GET.get("metric", "")
    if not rules.DEVICE_ID_RE.fullmatch(metric):
        raise ApiError(400, "bad_request", "metric: 1-64 chars of [A-Za-z0-9_-]")
    since, until = _float_param(request, "since"), _float_param(request, "until")
    points = await stub.query_telemetry(metric, since, until, _limit_param(request))
    return JsonResponse({"metric": metric, "points": points})


@router.get("/{device_id}/metrics", summary="Names of the metrics with stored telemetry")
async def get_metrics(request: HttpRequest, device_id: str) -> JsonResponse:
    return JsonResponse({"metrics": await _stub(device_id).metrics()})
