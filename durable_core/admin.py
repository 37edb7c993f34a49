"""The Django admin for durable objects (CONTRACT § Inspection, DESIGN §10).

The list shows object records (filter by namespace, search by name or id prefix, sort
by activity and size). The object page reads the object through its owner, as a turn,
or from its file when no host runs it (``inspection.ainspect``), and offers evict, fire
alarm now, and delete storage (after a confirmation page). Staff users may view it;
records are never edited by hand (the runtime keeps them).

Admin views are synchronous; the inspection is async and must run on the event loop
that owns the host and its connections. Under Daphne a sync view runs in a worker
thread started by ``sync_to_async``, and ``async_to_sync`` inside it hands the
coroutine back to that server loop, so stubs and Redis clients are used where they
live. The coroutine runs as a task in a fresh context (``_on_loop``): objects it activates
start their dispatcher and eviction tasks from that context, and must not inherit this
request thread's asgiref executor, which is gone once the view returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse

from . import inspection, operations
from .conf import is_cluster_mode
from .exceptions import DurableError, InvalidArgument
from .ids import ObjectId
from .models import LiveOperations, ObjectRecord

logger = logging.getLogger(__name__)


def _on_loop(coroutine_function: Any, *args: Any) -> Any:
    """Run ``coroutine_function(*args)`` on the event loop from this sync view."""

    async def detached() -> Any:
        loop = asyncio.get_running_loop()
        return await loop.create_task(coroutine_function(*args), context=contextvars.Context())

    return async_to_sync(detached)()


def _object_id(record: ObjectRecord) -> ObjectId:
    return ObjectId(record.namespace, record.object_id, record.name or None)


def _epoch(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.UTC)


@admin.register(ObjectRecord)
class ObjectRecordAdmin(admin.ModelAdmin):
    """Object records, and the inspection page of one object."""

    list_display = ("label", "namespace", "short_id", "last_active", "size", "deleted")
    list_display_links = ("label",)
    list_filter = ("namespace", "deleted")
    search_fields = ("name", "object_id")  # prefix ranges, see get_search_results
    search_help_text = "prefix of the name or of the 64-hex id"
    ordering = ("-last_active",)
    sortable_by = ("label", "namespace", "last_active", "size")
    list_per_page = 50
    show_full_result_count = False  # one COUNT per page, not two

    # -- who may do what: staff view; records are the runtime's ------------------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # "delete storage" below goes through the owner instead

    # -- the list ----------------------------------------------------------------------

    @admin.display(description="object", ordering="name")
    def label(self, record: ObjectRecord) -> str:
        return record.name or f"#{record.object_id[:12]}"

    @admin.display(description="id")
    def short_id(self, record: ObjectRecord) -> str:
        return f"{record.object_id[:16]}…"

    @admin.display(description="storage", ordering="storage_bytes")
    def size(self, record: ObjectRecord) -> str:
        return filesizeformat(record.storage_bytes)

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str):
        """Prefix search on name or id as index ranges (SQLite's LIKE cannot use an
        index, so ``icontains`` would scan every record)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(inspection.search_filter(term)), False

    # -- the object page and its actions ----------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        own = [
            path("<int:pk>/evict/", wrap(self.evict_view), name="durable_core_objectrecord_evict"),
            path(
                "<int:pk>/fire-alarm/",
                wrap(self.fire_alarm_view),
                name="durable_core_objectrecord_fire_alarm",
            ),
            path(
                "<int:pk>/delete-storage/",
                wrap(self.delete_storage_view),
                name="durable_core_objectrecord_delete_storage",
            ),
        ]
        return own + super().get_urls()

    def _record(self, request: HttpRequest, pk: Any) -> ObjectRecord:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return get_object_or_404(ObjectRecord, pk=int(pk))
        except ValueError:
            raise Http404("no such object record") from None

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        """The inspection page of one object (read-only)."""
        record = self._record(request, object_id)
        error = None
        try:
            options = inspection.read_options(
                kv_after=request.GET.get("kv_after") or None,
                table=request.GET.get("table") or None,
                rows_after=_int_or_none(request.GET.get("rows_after")),
            )
        except (InvalidArgument, ValueError):
            options = inspection.read_options()
        try:
            data = _on_loop(inspection.ainspect, _object_id(record), options)
        except DurableError as exc:
            data, error = None, str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{record.namespace} · {record.name or record.object_id[:16]}",
            "record": record,
            "data": data,
            "error": error,
            "lease_expires": data and data["lease"]["expires_in"],
            "alarm_at": _epoch(data["alarm"]) if data else None,
            "kv": [
                {"key": k, "json": _pretty(v), "truncated": k in data["storage"]["kv_truncated"]}
                for k, v in data["storage"]["kv"].items()
            ]
            if data
            else [],
            "paged_table": options["table"],
            "kv_after": options["kv_after"],
        }
        return TemplateResponse(request, "admin/durable_core/objectrecord/inspect.html", context)

    def evict_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        """POST: evict the object after its current turn."""
        record = self._record(request, pk)
        if request.method == "POST":
            try:
                evicted = _on_loop(inspection.aevict, _object_id(record))
            except DurableError as exc:
                messages.error(request, f"Evict failed: {exc}")
            else:
                if evicted:
                    messages.success(request, "Evicting: the object leaves memory after its turn.")
                else:
                    messages.info(request, "The object was not active; nothing to evict.")
        return HttpResponseRedirect(self._change_url(record))

    def fire_alarm_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        """POST: make the object's alarm due now."""
        record = self._record(request, pk)
        if request.method == "POST":
            try:
                when = _on_loop(inspection.afire_alarm, _object_id(record))
            except DurableError as exc:
                messages.error(request, f"Fire alarm failed: {exc}")
            else:
                if when is None:
                    messages.warning(request, "The object has no alarm set.")
                else:
                    messages.success(request, "The alarm is due now; it runs as an alarm turn.")
        return HttpResponseRedirect(self._change_url(record))

    def delete_storage_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        """GET: the confirmation page; POST: delete the object's storage via its owner."""
        record = self._record(request, pk)
        if request.method == "POST":
            try:
                _on_loop(inspection.adestroy, _object_id(record))
            except DurableError as exc:
                messages.error(request, f"Delete failed: {exc}")
                return HttpResponseRedirect(self._change_url(record))
            messages.success(
                request, f"Deleted the storage of {record}; the record stays as its fence floor."
            )
            return HttpResponseRedirect(reverse("admin:durable_core_objectrecord_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Delete storage?",
            "record": record,
        }
        return TemplateResponse(
            request, "admin/durable_core/objectrecord/delete_storage.html", context
        )

    def _change_url(self, record: ObjectRecord) -> str:
        return reverse("admin:durable_core_objectrecord_change", args=[record.pk])


def _int_or_none(value: str | None) -> int | None:
    return None if value in (None, "") else int(value)


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


STREAM_PERIOD = 1.0  # seconds between two updates of the live operations page
STREAM_SECONDS = 600.0  # a stream ends after this; the browser's EventSource reconnects


@admin.register(LiveOperations)
class LiveOperationsAdmin(admin.ModelAdmin):
    """The live operations page (issue 22): hosts, the hottest objects across the cluster
    with their owners and figures, overload events, pushed every second over Server-Sent
    Events; each object links to its inspection page, and can be limited or moved."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name="durable_core_liveoperations_changelist"),
            path("stream/", self.stream_view, name="durable_core_liveoperations_stream"),
            path(
                "object/<str:namespace>/<str:hex_id>/",
                wrap(self.object_view),
                name="durable_core_liveoperations_object",
            ),
            path("limit/", wrap(self.limit_view), name="durable_core_liveoperations_limit"),
            path("move/", wrap(self.move_view), name="durable_core_liveoperations_move"),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        """The page; its figures arrive over the stream."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Live operations",
            "cluster": is_cluster_mode(),
        }
        return TemplateResponse(request, "admin/durable_core/liveoperations/live.html", context)

    async def stream_view(self, request: HttpRequest) -> HttpResponse:
        """``text/event-stream``: one ``operations.aoverview`` as JSON every second."""
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            return JsonResponse({"error": "forbidden", "message": "staff only"}, status=403)
        response = StreamingHttpResponse(self._events(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold the updates
        return response

    async def _events(self) -> AsyncIterator[str]:
        end = time.monotonic() + STREAM_SECONDS
        yield "retry: 2000\n\n"
        while time.monotonic() < end:
            try:
                data = await operations.aoverview()
            except Exception as exc:  # Redis unreachable: say so, keep the stream
                logger.warning("live operations: %s", exc)
                data = {"ts": time.time(), "error": str(exc), "hosts": [], "objects": []}
            for entry in data.get("objects", ()):
                entry["url"] = reverse(
                    "admin:durable_core_liveoperations_object",
                    args=[entry["namespace"], entry["id"]],
                )
            yield f"data: {json.dumps(data)}\n\n"
            await asyncio.sleep(STREAM_PERIOD)

    def object_view(self, request: HttpRequest, namespace: str, hex_id: str) -> HttpResponse:
        """To the inspection page of an object known by namespace and id."""
        record = ObjectRecord.objects.filter(namespace=namespace, object_id=hex_id).first()
        if record is None:
            messages.info(request, f"{namespace}:{hex_id[:12]} has stored nothing yet.")
            return HttpResponseRedirect(reverse("admin:durable_core_liveoperations_changelist"))
        return HttpResponseRedirect(
            reverse("admin:durable_core_objectrecord_change", args=[record.pk])
        )

    def _posted_object(self, request: HttpRequest) -> ObjectId:
        if request.method != "POST":
            raise InvalidArgument("use POST")
        namespace, hex_id = request.POST.get("namespace", ""), request.POST.get("id", "")
        return ObjectId.from_string(namespace, hex_id)

    def limit_view(self, request: HttpRequest) -> JsonResponse:
        """POST namespace, id, turns_per_s and/or mailbox (empty: none): set the limit."""
        try:
            object_id = self._posted_object(request)
            body = {
                "turns_per_s": _number_or_none(request.POST.get("turns_per_s"), float),
                "mailbox": _number_or_none(request.POST.get("mailbox"), int),
            }
            limit = _on_loop(operations.aset_limit, object_id, body if any(body.values()) else None)
        except (InvalidArgument, ValueError) as exc:
            return JsonResponse({"error": "bad_request", "message": str(exc)}, status=400)
        except DurableError as exc:
            return JsonResponse({"error": "unavailable", "message": str(exc)}, status=503)
        return JsonResponse({"limit": limit})

    def move_view(self, request: HttpRequest) -> JsonResponse:
        """POST namespace, id, host: move the object to that host (cluster mode)."""
        try:
            object_id = self._posted_object(request)
            moved = _on_loop(operations.amove, object_id, request.POST.get("host", ""))
        except (InvalidArgument, ValueError) as exc:
            return JsonResponse({"error": "bad_request", "message": str(exc)}, status=400)
        except DurableError as exc:
            return JsonResponse({"error": "unavailable", "message": str(exc)}, status=503)
        return JsonResponse(moved, status=202)


def _number_or_none(value: str | None, kind: type) -> Any:
    return None if value in (None, "") else kind(value)
