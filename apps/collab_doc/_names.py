"""Document names (CONTRACT: as chat room names) and the stub a name addresses."""

from __future__ import annotations

from durable_core.exceptions import InvalidObjectId
from durable_core.registry import get_namespace
from durable_core.stubs import ObjectStub

NAMESPACE = "collab_doc.Document"


def document_stub(name: str) -> ObjectStub:
    """The document ``name`` addresses: a 64-hex name is read as an object ID.

    Raises:
        LookupError: the name is malformed, or a 64-hex name is not an ID of documents.
    """
    try:
        return get_namespace(NAMESPACE).resolve(name)
    except InvalidObjectId as exc:
        raise LookupError(f"no such document: {exc}") from None
