"""REST API of the device twins, mounted at ``/api/devices/`` (CONTRACT § IoT).

Anonymous JSON, no CSRF (no cookie authentication). Bodies, answers and errors are
declared as schemas, so ``/api/openapi.json`` documents them and ninja refuses a body of
the wrong shape (400) before a view runs. The schemas only say the shape: the twin rules
(``twin.py``) stay the one place that checks a write (nesting deeper than 6, client
tokens, Unicode) and the device object decides conflicts (409) and sizes (413), one write
at a time. A body over 64 KiB is a 413 before it is parsed.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

from django.core.exceptions import RequestDataTooBig
from django.db.models import Q, Subquery
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from ninja.decorators import decorate_view
from pydantic import ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from pydantic.json_schema import SkipJsonSchema

from apps.ratelimit.creation import araise_if_refused
from durable_core.api import ErrorOut
from durable_core.models import ObjectRecord
from durable_core.web import ApiError, client_ip, error_response

from . import twin as rules
from .devices import NAMESPACE, get_device_stub, new_device_stub
from .models import DeviceSummary
from .objects import MAX_QUERY_POINTS

router = Router(tags=["devices"])

MAX_BODY_BYTES = 64 * 1024  # anything larger cannot make a document under 8 KiB
MAX_TELEMETRY_POINTS = 1000  # per request
MAX_LISTED = 1000


def _anchored(pattern: str) -> str:
    """A regex for a schema's ``pattern``, which matches anywhere unless anchored."""
    return f"^(?:{pattern})$"


# Plain ASCII numbers only: str.isdigit() and float() also take "²" or Arabic-Indic
# digits, and int() refuses some of what isdigit() accepts (a 500 once). Empty: not given.
_FLOAT = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_LIMIT = r"[0-9]{1,6}"
_NAME = _anchored(rules.DEVICE_ID_RE.pattern)


# -- answers and errors ---------------------------------------------------------------------


class ConnectionOut(Schema):
    state: Literal["connected", "disconnected"]
    last_seen: float | None = Field(description="epoch seconds of the device's last message")


class DeviceListed(Schema):
    device_id: str
    version: int
    timestamp: float | None = Field(description="the twin's last write")
    connection: ConnectionOut


class DevicesOut(Schema):
    devices: list[DeviceListed]


class TwinStateOut(Schema):
    desired: dict[str, Any]
    reported: dict[str, Any]
    delta: dict[str, Any] = Field(
        description="desired fields missing from or different in reported (nested paths "
        "kept, arrays compared whole)"
    )


class TwinMetadataOut(Schema):
    desired: dict[str, Any] = Field(
        description='the tree of the fields written, each leaf {"timestamp": t}'
    )
    reported: dict[str, Any]


class TwinOut(Schema):
    """The twin document (CONTRACT § IoT device twins)."""

    device_id: str
    state: TwinStateOut
    metadata: TwinMetadataOut
    version: int = Field(description="+1 on every accepted write (and on a delete)")
    timestamp: float | None = Field(description="epoch seconds of the last write")
    connection: ConnectionOut


class TwinWrittenOut(TwinOut):
    """The new twin document, with the request's client token echoed in the spelling
    sent (only when one was sent)."""

    client_token: str | None = None
    clientToken: str | None = None  # AWS Device Shadow's spelling


class VersionConflictOut(ErrorOut):
    """409 ``version_conflict``: the current version, and the client token if sent."""

    version: int
    client_token: str | None = None
    clientToken: str | None = None


class TelemetryStoredOut(Schema):
    stored: int = Field(description="points stored")


class PointsOut(Schema):
    metric: str
    points: list[tuple[float, float]] = Field(description="[ts, value], oldest first")


class MetricsOut(Schema):
    metrics: list[str]


# The errors a route can answer, declared so that /api/openapi.json shows them. Every route
# reaching a device: an id naming no device (404), a runtime that cannot answer now (503 +
# Retry-After). Writes (which may create the object): a bad body (400), a body or document
# too large (413), the creation limit of CREATE_RATE_LIMIT (429).
_DEVICE = {404: ErrorOut, 503: ErrorOut}
_CREATE = {400: ErrorOut, 413: ErrorOut, 429: ErrorOut, 503: ErrorOut}
_WRITE = {**_DEVICE, **_CREATE}


# -- bodies ---------------------------------------------------------------------------------


class TwinStatePatch(Schema):
    """Partial merge into either section; ``null`` deletes a field, a section ``null``
    clears it. At most 6 levels deep."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    desired: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None


class TwinPatchIn(Schema):
    """A write. Unknown top-level keys are refused (400), so a misspelt field is not
    silently dropped. The client token may come as ``client_token`` or as AWS's
    ``clientToken`` (not both) and is echoed the same way."""

    model_config = ConfigDict(extra="forbid")

    state: TwinStatePatch
    version: StrictInt | None = Field(None, description="the version read; 409 if not current")
    client_token: StrictStr | None = Field(None, max_length=64, description="≤ 64 bytes UTF-8")
    clientToken: StrictStr | None = Field(  # AWS Device Shadow's spelling
        None, max_length=64, description="client_token as AWS spells it"
    )


class DeviceCreateIn(Schema):
    model_config = ConfigDict(extra="forbid")

    device_id: StrictStr | None = Field(
        None, pattern=_NAME, description="1-64 chars of [A-Za-z0-9_-], not 64 hex; default: new"
    )
    desired: dict[str, Any] | None = None


_NO_BODY = DeviceCreateIn()  # an empty body: a new id, nothing desired (JSON null is a 400)


class TelemetryPointIn(Schema):
    metrics: dict[str, StrictFloat] = Field(description="metric name → finite number")
    # null is refused by the device (a point without ts is stamped now), hence no null here
    ts: StrictFloat | SkipJsonSchema[None] = Field(None, description="epoch seconds; default now")


class TelemetryIn(Schema):
    """One point ``{"metrics", "ts"?}`` or a batch ``{"points": [...]}``, not both."""

    model_config = ConfigDict(extra="forbid")

    # Defaults for fields not sent; the view reads only what was sent (exclude_unset).
    metrics: dict[str, StrictFloat] = Field(default_factory=dict)
    ts: StrictFloat | SkipJsonSchema[None] = Field(None, description="epoch seconds; default now")
    points: list[TelemetryPointIn] = Field(
        default_factory=list, min_length=1, max_length=MAX_TELEMETRY_POINTS
    )


class TelemetryQuery(Schema):
    metric: str = Field(pattern=_NAME, description="1-64 chars of [A-Za-z0-9_-]")
    since: str = Field("", pattern=_anchored(f"(?:{_FLOAT})?"), description="epoch seconds")
    until: str = Field("", pattern=_anchored(f"(?:{_FLOAT})?"), description="epoch seconds")
    limit: str = Field(
        "", pattern=_anchored(f"(?:{_LIMIT})?"), description=f"1-{MAX_QUERY_POINTS} (default 1000)"
    )


# -- helpers --------------------------------------------------------------------------------


def _limit_body(run):
    """Operation wrapper: a body over ``MAX_BODY_BYTES`` is a 413 before it is parsed."""

    @functools.wraps(run)
    async def checked(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        try:
            size = len(request.body)
        except RequestDataTooBig:  # over Django's DATA_UPLOAD_MAX_MEMORY_SIZE
            size = math.inf
        if size > MAX_BODY_BYTES:
            return error_response(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        return await run(request, **kwargs)

    return checked


def _stub(device_id: str):
    try:
        return get_device_stub(device_id)
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


def _answer(result: dict) -> Any:
    """The object's refusal as the contract's error, or its result with its status."""
    if result["status"] >= 400:
        extra = {k: v for k, v in result.items() if k not in ("status", "error", "message")}
        raise ApiError(result["status"], result["error"], result["message"], **extra)
    body = {k: v for k, v in result.items() if k != "status"}
    return Status(result["status"], body.get("twin", body))


def _update(raw: dict) -> dict:
    """The twin rules' check of a write (raw: the body's fields as sent)."""
    try:
        return rules.parse_update(raw)
    except rules.TwinError as exc:
        raise ApiError(exc.status, exc.code, exc.message, **exc.extra) from None


# -- routes ---------------------------------------------------------------------------------


@router.get("/", response=DevicesOut, summary="Devices with their version and connection state")
async def list_devices(request: HttpRequest):
    """From the object records (devices not deleted) joined with the summaries the
    device objects write; no object is activated, no file is read."""
    live = ObjectRecord.objects.filter(namespace=NAMESPACE, deleted=False).values("object_id")
    rows = DeviceSummary.objects.filter(object_id__in=Subquery(live)).filter(
        Q(has_twin=True) | Q(connected=True)
    )
    return {"devices": [row.as_listed() async for row in rows.order_by("device_id")[:MAX_LISTED]]}


@router.post(
    "/",
    response={201: TwinOut, **_CREATE, 409: ErrorOut},
    summary="Create a device: a new twin (201), with a new id unless given",
)
@decorate_view(_limit_body)
async def create_device(request: HttpRequest, body: DeviceCreateIn = _NO_BODY):
    """409 ``exists`` when the device already has a twin."""
    if body.device_id is None:
        stub = new_device_stub()
    elif rules.HEX_ID_RE.fullmatch(body.device_id):
        raise ApiError(400, "bad_request", "a 64-hex device_id is an object id: omit it")
    else:
        stub = get_device_stub(body.device_id)
    update = _update({"state": {"desired": body.desired or {}}})
    await araise_if_refused(client_ip(request), stub.id)
    result = await stub.update(update, create_only=True)
    if result["status"] == 200:
        result["status"] = 201
    return _answer(result)


@router.get("/{device_id}/twin", response={200: TwinOut, **_DEVICE}, summary="The twin document")
async def get_twin(request: HttpRequest, device_id: str):
    """404 when the device never had a twin (or it was deleted)."""
    doc = await _stub(device_id).get_twin()
    if doc is None:
        raise ApiError(404, "not_found", f"device {device_id} has no twin")
    return doc


@router.patch(
    "/{device_id}/twin",
    response={200: TwinWrittenOut, **_WRITE, 409: VersionConflictOut},
    exclude_unset=True,  # the answer holds the client token only when one was sent
    summary="Merge desired and/or reported state",
)
@decorate_view(_limit_body)
async def patch_twin(request: HttpRequest, device_id: str, body: TwinPatchIn):
    """Partial merge; 409 ``version_conflict`` with the current version when ``version``
    is not current; 413 when the document would exceed 8 KiB."""
    stub = _stub(device_id)
    update = _update(body.model_dump(exclude_unset=True))
    token, field = update["client_token"], update["token_field"]
    await araise_if_refused(client_ip(request), stub.id)
    result = await stub.update(update)
    if token is not None:
        # echoed in the spelling sent (client_token or AWS's clientToken), refusals too
        (result["twin"] if result["status"] == 200 else result)[field] = token
    return _answer(result)


@router.delete(
    "/{device_id}/twin",
    response={204: None, **_DEVICE},
    summary="Delete the twin (the version count continues)",
)
async def delete_twin(request: HttpRequest, device_id: str):
    """204 whether or not a twin was there: DELETE is idempotent (CONTRACT: → 204)."""
    await _stub(device_id).delete_twin()
    return HttpResponse(status=204)


@router.post(
    "/{device_id}/telemetry",
    response={202: TelemetryStoredOut, **_WRITE},
    summary="Store telemetry (202)",
)
@decorate_view(_limit_body)
async def post_telemetry(request: HttpRequest, device_id: str, body: TelemetryIn):
    """``{"metrics": {...}, "ts"?: t}``, or a batch ``{"points": [{"metrics", "ts"?}, ...]}``."""
    stub = _stub(device_id)
    sent = body.model_dump(exclude_unset=True)
    if set(sent) == {"points"}:
        points = sent["points"]
    elif "metrics" in sent and "points" not in sent:
        points = [sent]
    else:
        raise ApiError(400, "bad_request", 'body: {"metrics": {...}, "ts"?: t} or {"points"}')
    await araise_if_refused(client_ip(request), stub.id)
    return _answer(await stub.add_telemetry(points))


def _float_param(raw: str, name: str) -> float | None:
    if raw == "":
        return None
    # isfinite: 1e999 is well-formed, but float() makes it inf.
    if not math.isfinite(value := float(raw)):
        raise ApiError(400, "bad_request", f"{name}: epoch seconds")
    return value


@router.get(
    "/{device_id}/telemetry",
    response={200: PointsOut, **_DEVICE, 400: ErrorOut},
    summary="Points of one metric, oldest first",
)
async def get_telemetry(request: HttpRequest, device_id: str, query: Query[TelemetryQuery]):
    """``?metric=temp&since=&until=&limit=`` (since and until inclusive; limit ≤ 10,000)."""
    stub = _stub(device_id)
    since, until = _float_param(query.since, "since"), _float_param(query.until, "until")
    limit = int(query.limit or 1000)
    if not 1 <= limit <= MAX_QUERY_POINTS:
        raise ApiError(400, "bad_request", f"limit: 1-{MAX_QUERY_POINTS}")
    points = await stub.query_telemetry(query.metric, since, until, limit)
    return {"metric": query.metric, "points": points}


@router.get(
    "/{device_id}/metrics",
    response={200: MetricsOut, **_DEVICE},
    summary="Names of the metrics with stored telemetry",
)
async def get_metrics(request: HttpRequest, device_id: str):
    return {"metrics": await _stub(device_id).metrics()}
