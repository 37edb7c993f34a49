"""Document names (CONTRACT: as chat room names) and the stub a name addresses."""

from __future__ import annotations

import re

from durable_core.registry import get_namespace
from durable_core.stubs import ObjectStub

NAMESPACE = "collab_doc.Document"
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Any 64-hex name is read as an object ID, uppercase too (as chat rooms and devices):
# an uppercase one is never a valid ID, so it names no document instead of a named one.
_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")


def document_stub(name: str) -> ObjectStub:
    """The document ``name`` addresses: a 64-hex name is read as an object ID.

    Raises:
        LookupError: the name is malformed, or a 64-hex name is not an ID of documents.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise LookupError("document names are 1-64 characters of [A-Za-z0-9_-]")
    namespace = get_namespace(NAMESPACE)
    if _HEX_ID.fullmatch(name):
        try:
            return namespace.get(namespace.id_from_string(name))
        except ValueError:
            raise LookupError("no such document") from None
    return namespace.get_by_name(name)
