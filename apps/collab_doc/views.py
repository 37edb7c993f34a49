"""Pages of the collaborative editor: the document list and the editor."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from durable_core.models import ObjectRecord

from ._names import NAME_RE, NAMESPACE

LIST_LIMIT = 100


def documents(request: HttpRequest) -> HttpResponse:
    """Open or create a document by name; the documents most recently edited."""
    rows = (
        ObjectRecord.objects.filter(namespace=NAMESPACE, deleted=False)
        .exclude(name="")
        .order_by("-last_active")[:LIST_LIMIT]
    )
    return render(request, "collab_doc/documents.html", {"documents": list(rows)})


def editor(request: HttpRequest, name: str) -> HttpResponse:
    """The editor of the document ``name`` (created by its first edit)."""
    if not NAME_RE.fullmatch(name):
        raise Http404("document names are 1-64 characters of [A-Za-z0-9_-]")
    return render(request, "collab_doc/editor.html", {"name": name})
