"""REST API of the collab_doc app (a django-ninja router mounted at /api/documents/).

Anonymous JSON, no CSRF (no cookie authentication); errors in the contract's JSON
shape. A POSTed edit is applied by the document object as one Yjs update, stored, and
broadcast to the connected editors like any editor's update.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field, StrictInt, StrictStr

from apps.ratelimit.creation import araise_if_refused
from durable_core.api import ErrorOut
from durable_core.models import ObjectRecord
from durable_core.web import ApiError, client_ip

from ._names import NAMESPACE, document_stub

router = Router(tags=["documents"])

MAX_INSERT_CHARS = 100_000
LIST_LIMIT = 200


class DocumentOut(Schema):
    name: str
    text: str
    version: int


class EditIn(Schema):
    """Insert ``insert`` at ``index``, or delete ``delete`` characters from ``index``.
    Indexes count Unicode code points of the current text."""

    index: StrictInt = Field(ge=0)
    insert: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_INSERT_CHARS)
    delete: StrictInt | None = Field(default=None, ge=1)


class DocumentSummary(Schema):
    name: str
    created: float
    last_active: float
    bytes: int


class DocumentList(Schema):
    documents: list[DocumentSummary]


_STATUS = {"out_of_range": 400, "too_large": 413}

# The errors a route can answer, declared so that /api/openapi.json shows them: a name that
# names no document (404), the runtime unable to answer now (503); an edit can be refused
# (400 bad or out of range, 413 too large) or hit the creation limit (429).
_DOCUMENT = {404: ErrorOut, 503: ErrorOut}
_EDIT = {**_DOCUMENT, 400: ErrorOut, 413: ErrorOut, 429: ErrorOut}


def _stub(name: str):
    try:
        return document_stub(name)
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@router.get("/", response=DocumentList, summary="Documents, most recently active first")
async def list_documents(request: HttpRequest):
    rows = ObjectRecord.objects.filter(namespace=NAMESPACE, deleted=False).exclude(name="")
    documents = [
        {
            "name": row.name,
            "created": row.created.timestamp(),
            "last_active": row.last_active.timestamp(),
            "bytes": row.storage_bytes,
        }
        async for row in rows.order_by("-last_active")[:LIST_LIMIT]
    ]
    return {"documents": documents}


@router.get(
    "/{name}", response={200: DocumentOut, **_DOCUMENT}, summary="A document's text and version"
)
async def get_document(request: HttpRequest, name: str):
    result = await _stub(name).read()
    return {"name": name, **result}


@router.post(
    "/{name}/edits",
    response={200: DocumentOut, **_EDIT},
    summary="Apply an edit; returns the document",
)
async def post_edit(request: HttpRequest, name: str, edit: EditIn):
    if (edit.insert is None) == (edit.delete is None):
        raise ApiError(400, "bad_request", "give exactly one of 'insert' and 'delete'")
    stub = _stub(name)
    await araise_if_refused(client_ip(request), stub.id)
    if edit.insert is not None:
        result = await stub.edit(edit.index, insert=edit.insert)
    else:
        result = await stub.edit(edit.index, delete=edit.delete)
    if "error" in result:
        raise ApiError(_STATUS.get(result["error"], 400), result["error"], result["message"])
    return {"name": name, **result}
