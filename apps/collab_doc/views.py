"""Pages of the collaborative editor: the document list and the editor."""

from __future__ import annotations

import datetime as dt

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from durable_core.models import ObjectRecord

from ._names import NAMESPACE, document_stub

LIST_LIMIT = 100


def documents(request: HttpRequest) -> HttpResponse:
    """Open or create a document by name; the documents most recently edited."""
    rows = (
        ObjectRecord.objects.filter(namespace=NAMESPACE, deleted=False)
        .exclude(name="")
        .order_by("-last_active")[:LIST_LIMIT]
    )
    now = timezone.now()
    documents = [
        {"name": row.name, "created": row.created, "edited": _ago(now - row.last_active)}
        for row in rows
    ]
    return render(request, "collab_doc/documents.html", {"documents": documents})


def _ago(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def editor(request: HttpRequest, name: str) -> HttpResponse:
    """The editor of the document ``name`` (created by its first edit)."""
    try:
        document_stub(name)  # the same decision as the REST and WebSocket routes
    except LookupError as exc:
        raise Http404(str(exc)) from None
    return render(request, "collab_doc/editor.html", {"name": name})
