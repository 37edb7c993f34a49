"""Staff-only REST inspection and operations of the runtime (CONTRACT § Inspection,
§ Operations: hot objects, per-object limits, moving an object).

Two django-ninja routers, mounted by the project's API at ``/api/objects/`` and
``/api/hosts/``. Both require a Django session of a staff user (401 when anonymous, 403
otherwise) and Django's CSRF token on unsafe methods, like the admin.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from ninja.errors import AuthenticationError, AuthorizationError
from ninja.security.apikey import APIKeyCookie
from pydantic import ConfigDict, Field

from . import inspection, operations
from .conf import is_cluster_mode
from .exceptions import InvalidArgument, InvalidObjectId
from .ids import ObjectId
from .web import ApiError


class StaffSessionAuth(APIKeyCookie):
    """Django session authentication of a staff user; CSRF checked on unsafe methods."""

    param_name = settings.SESSION_COOKIE_NAME

    async def __call__(self, request: HttpRequest) -> Any:
        user = await request.auser()
        if not user.is_authenticated:
            raise AuthenticationError(message="log in as a staff user")
        if not user.is_staff:
            raise AuthorizationError(message="staff only")
        self._get_key(request)  # the CSRF check (403 on unsafe methods without the token)
        request.user = user
        return user

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return None  # __call__ does the work (asynchronously)


staff_only = StaffSessionAuth()
router = Router(tags=["inspection"], auth=staff_only)
hosts_router = Router(tags=["inspection"], auth=staff_only)


class ErrorOut(Schema):
    """Every error answer (CONTRACT): a code such as ``not_found``, a human message, and
    for some codes more fields."""

    error: str
    message: str


# The errors each kind of route can answer (401 anonymous, 403 not staff or no CSRF token,
# 400 bad parameters, 404 unknown object, 503 when the object's owner cannot answer now),
# declared so the OpenAPI document shows them.
_STAFF = {401: ErrorOut, 403: ErrorOut}
_PARAMS = {**_STAFF, 400: ErrorOut}
_OBJECT = {**_PARAMS, 404: ErrorOut, 503: ErrorOut}


class HostOut(Schema):
    id: str
    pid: int | None = None
    channel: str | None = None
    started: float | None = None
    objects: int | None = None
    alive: bool


class HostsOut(Schema):
    hosts: list[HostOut]


class NamespaceOut(Schema):
    namespace: str
    objects: int = Field(description="objects with stored data (records not deleted)")
    active: int = Field(description="objects active on some live host now")


class NamespacesOut(Schema):
    namespaces: list[NamespaceOut]


class ObjectSummary(Schema):
    id: str
    name: str | None
    created: float
    last_active: float
    storage_bytes: int
    active: bool
    owner: str | None


class ObjectsOut(Schema):
    objects: list[ObjectSummary]
    next_cursor: str | None


class LeaseOut(Schema):
    owner: str | None = Field(description="a host id from /api/hosts/, None when not active")
    token: int | None = Field(description="fencing token (the stored fence when not active)")
    expires_in: float | None


class ObjectDetail(Schema):
    id: str
    namespace: str
    name: str | None
    created: float | None
    last_active: float | None
    deleted: bool
    source: str = Field(description='"owner" (read as a turn) or "snapshot" (file, inactive)')
    lease: LeaseOut
    alarm: float | None
    storage: dict[str, Any] = Field(
        description="bytes, keys, kv (a page), kv_next, tables [{name, rows, columns, page}]"
    )
    websockets: dict[str, Any] = Field(description="count, tags {tag: n}, sockets (first 100)")
    limit: dict[str, Any] | None = Field(
        None, description="the operator's limit {turns_per_s, mailbox}, null when none"
    )


class ReadQuery(Schema):
    kv_after: str | None = Field(None, description="page of key-value entries after this key")
    kv_limit: int = Field(inspection.KV_PAGE, ge=1, le=inspection.KV_PAGE_MAX)
    table: str | None = Field(None, description="the table whose rows are paged")
    rows_after: int | None = Field(None, ge=0, description="rowid cursor of that table")
    rows_limit: int = Field(inspection.ROWS_PAGE, ge=1, le=inspection.ROWS_PAGE_MAX)


class Accepted(Schema):
    ok: bool = True
    detail: str


@hosts_router.get("/", response={200: HostsOut, **_STAFF}, summary="Every known host")
async def list_hosts(request: HttpRequest) -> dict[str, Any]:
    """Every known host; the ``owner`` of a lease is one of these ids."""
    return {"hosts": await inspection.alist_hosts()}


class HotObjectOut(Schema):
    namespace: str
    id: str
    name: str | None
    owner: str | None = Field(description="the host running it (a host id from /api/hosts/)")
    turns_per_s: float
    busy: float = Field(description="share of the owner's wall time spent in its turns, 0-1")
    mailbox: int = Field(description="events queued now")
    rejected: float = Field(description="calls refused per second (mailbox full or limit)")
    heat: float = Field(description="the ranking figure: busy + turns/1000 + mailbox share + …")


class OverloadOut(Schema):
    ts: float
    namespace: str
    id: str
    name: str | None
    owner: str | None
    mailbox_full: int = Field(description="calls refused for a full mailbox in that second")
    limited: int = Field(description="calls refused by the object's limit in that second")


class HotOut(Schema):
    objects: list[HotObjectOut]
    overloads: list[OverloadOut]


@router.get("/hot", response={200: HotOut, **_PARAMS}, summary="The hottest objects")
async def hot_objects(
    request: HttpRequest,
    limit: int = Query(20, ge=1, le=operations.HOT_LIMIT_MAX),
    by: str = Query("heat", description="heat, busy, turns_per_s, mailbox or rejected"),
) -> dict[str, Any]:
    """The hottest objects across the cluster with their owners and figures, hottest
    first, current within a heartbeat; and the recent overload events, newest first."""
    try:
        return await operations.ahot(limit, by)
    except InvalidArgument as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


@router.get("/", response={200: NamespacesOut, **_STAFF}, summary="Namespaces with object counts")
async def list_namespaces(request: HttpRequest) -> dict[str, Any]:
    """Every namespace: objects with stored data, and how many are active now."""
    return {"namespaces": await inspection.anamespaces()}


@router.get(
    "/{namespace}/", response={200: ObjectsOut, **_PARAMS}, summary="Objects of a namespace (paged)"
)
async def list_objects(
    request: HttpRequest,
    namespace: str,
    q: str = Query("", max_length=200, description="prefix of the name or of the id"),
    cursor: str | None = Query(None, max_length=64, description="next_cursor of the last page"),
    limit: int = Query(inspection.OBJECTS_PAGE, ge=1, le=inspection.OBJECTS_PAGE_MAX),
) -> dict[str, Any]:
    """A keyset page of the namespace's objects, in id order, with their owners."""
    return await inspection.alist_objects(namespace, q, cursor, limit)


async def _object_id(namespace: str, hex_id: str) -> tuple[ObjectId, Any]:
    try:
        object_id = ObjectId.from_string(namespace, hex_id)
    except InvalidObjectId:
        raise ApiError(404, "not_found", f"no object {hex_id!r} in {namespace!r}") from None
    record = await inspection.aget_record(namespace, object_id.hex)
    if record is not None and record.name:
        object_id = ObjectId(namespace, object_id.hex, record.name)
    return object_id, record


@router.get(
    "/{namespace}/{object_id}",
    response={200: ObjectDetail, **_OBJECT},
    summary="Inspect one object",
)
async def get_object(
    request: HttpRequest, namespace: str, object_id: str, page: Query[ReadQuery]
) -> dict[str, Any]:
    """Lease, storage (a page of key-value entries, tables with a page of rows), alarm and
    sockets: read through the owner as a turn, or from the file when no host runs it."""
    oid, record = await _object_id(namespace, object_id)
    options = inspection.read_options(**page.dict())
    data = await inspection.ainspect(oid, options)
    if record is None and data["lease"]["owner"] is None and data["fence"] is None:
        raise ApiError(404, "not_found", f"{namespace}:{oid.hex} never stored data")
    return {
        "id": oid.hex,
        "namespace": namespace,
        "name": oid.name,
        "created": record.created.timestamp() if record else None,
        "last_active": record.last_active.timestamp() if record else None,
        "deleted": bool(record and record.deleted),
        **data,
    }


@router.post(
    "/{namespace}/{object_id}/evict", response={202: Accepted, **_OBJECT}, summary="Evict an object"
)
async def evict_object(request: HttpRequest, namespace: str, object_id: str):
    """Evict after its current turn (``ctx.abort``); the next call activates it afresh."""
    oid, _record = await _object_id(namespace, object_id)
    evicted = await inspection.aevict(oid)
    return Status(202, {"detail": "evicting" if evicted else "not active"})


@router.post(
    "/{namespace}/{object_id}/alarm",
    response={202: Accepted, **_OBJECT, 409: ErrorOut},
    summary="Fire an object's alarm now",
)
async def fire_alarm(request: HttpRequest, namespace: str, object_id: str):
    """Make the object's alarm due now (it runs as a normal alarm turn); 409 without one."""
    oid, _record = await _object_id(namespace, object_id)
    if await inspection.afire_alarm(oid) is None:
        raise ApiError(409, "no_alarm", "the object has no alarm set")
    return Status(202, {"detail": "alarm due now"})


@router.delete(
    "/{namespace}/{object_id}",
    response={204: None, **_OBJECT},
    summary="Delete an object's storage",
)
async def delete_object(request: HttpRequest, namespace: str, object_id: str):
    """Delete the object's storage through its owner (sockets closed, alarm dropped); its
    record stays as the fence floor, marked deleted."""
    oid, _record = await _object_id(namespace, object_id)
    await inspection.adestroy(oid)
    return HttpResponse(status=204)


class LimitIn(Schema):
    model_config = ConfigDict(extra="forbid")

    turns_per_s: float | None = Field(None, gt=0, description="calls admitted per second")
    mailbox: int | None = Field(None, ge=1, description="events queued at most")


class LimitOut(Schema):
    limit: dict[str, Any] | None = Field(description="{turns_per_s, mailbox}, or null: none")


@router.put(
    "/{namespace}/{object_id}/limit",
    response={200: LimitOut, **_OBJECT},
    summary="Set or remove an object's limit",
)
async def set_limit(request: HttpRequest, namespace: str, object_id: str, body: LimitIn):
    """Calls beyond the limit are refused before they reach the object (503 with
    Retry-After); all fields null removes it. Stored with the object: it follows it."""
    oid, _record = await _object_id(namespace, object_id)
    wanted = body.dict()
    try:
        limit = await operations.aset_limit(oid, wanted if any(wanted.values()) else None)
    except InvalidArgument as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    return {"limit": limit}


class MoveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=200, description="a live host id")


class MoveOut(Schema):
    ok: bool = True
    detail: str
    previous: str | None = Field(description="the host that ran it before, if any")
    owner: str | None = Field(description="its owner when the answer left")


@router.post(
    "/{namespace}/{object_id}/move",
    response={202: MoveOut, **_OBJECT, 409: ErrorOut},
    summary="Move an object to another host",
)
async def move_object(request: HttpRequest, namespace: str, object_id: str, body: MoveIn):
    """Drain the object from its owner and let the named host take it over (cluster
    mode; 409 in embedded mode, 400 for a host that is not alive)."""
    oid, _record = await _object_id(namespace, object_id)
    if not is_cluster_mode():
        raise ApiError(409, "not_cluster", "objects move between hosts in cluster mode only")
    try:
        moved = await operations.amove(oid, body.host)
    except InvalidArgument as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    detail = "moved" if moved["owner"] == body.host else "moving"
    return Status(202, {"detail": detail, "previous": moved["from"], "owner": moved["owner"]})
