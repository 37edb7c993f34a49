"""The twin document's rules, as pure functions: merge, metadata, delta and limits.

Modelled on AWS IoT Device Shadow (CONTRACT § IoT device twins): a write partially
merges ``desired`` and/or ``reported``, ``null`` deletes a field (and its metadata),
every leaf written gets a ``{"timestamp": t}`` in the metadata tree, and ``delta`` holds
the desired fields missing from or different in reported, nested paths kept and arrays
compared as whole values. Nothing here touches storage, so it is unit-tested directly.
"""

from __future__ import annotations

import json
import math
from typing import Any

from durable_core.registry import ADDRESS_ID_RE, ADDRESS_NAME_RE

MAX_DEPTH = 6  # levels of objects/arrays inside desired or reported
MAX_DOCUMENT_BYTES = 8 * 1024  # desired + reported, compact JSON
MAX_CLIENT_TOKEN_BYTES = 64
SECTIONS = ("desired", "reported")

DEVICE_ID_RE = ADDRESS_NAME_RE
# Any 64-hex id is read as an object ID, uppercase too (as chat rooms): an uppercase one
# is never a valid ID, so it names no device instead of becoming a name.
HEX_ID_RE = ADDRESS_ID_RE


class TwinError(ValueError):
    """Raised when a write is refused; ``status`` and ``code`` are the HTTP answer."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.code, "message": self.message, **self.extra}


def bad_request(message: str) -> TwinError:
    return TwinError(400, "bad_request", message)


# -- validation ---------------------------------------------------------------------------


def depth(value: Any) -> int:
    """Levels of nesting: a scalar is 0, ``{"a": 1}`` is 1, ``{"a": {"b": 1}}`` is 2.

    Iterative, so a hostile document cannot exhaust the Python stack.
    """
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


# The client token's two spellings: ours, and AWS Device Shadow's (accepted so that AWS
# clients work unchanged); the answer echoes the spelling the request used.
TOKEN_FIELDS = ("client_token", "clientToken")


def parse_update(body: Any) -> dict[str, Any]:
    """Validate a PATCH body; returns ``{"state", "version", "client_token", "token_field"}``
    (``token_field``: the spelling the client token came in, to echo it the same way).

    Raises:
        TwinError: 400 for a malformed body, a client token over 64 bytes (or given in
            both spellings), or nesting deeper than 6.
    """
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = set(body) - {"state", "version", *TOKEN_FIELDS}
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    given = [field for field in TOKEN_FIELDS if field in body]
    if len(given) > 1:
        raise bad_request("give client_token or clientToken, not both")
    field = given[0] if given else "client_token"
    token = body.get(field)
    if token is not None:
        if not isinstance(token, str):
            raise bad_request(f"{field} must be a string")
        if not is_unicode(token):
            raise bad_request(f"{field} must be valid Unicode text (no lone surrogates)")
        if len(token.encode("utf-8", "surrogatepass")) > MAX_CLIENT_TOKEN_BYTES:
            raise bad_request(f"{field} is longer than {MAX_CLIENT_TOKEN_BYTES} bytes")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise bad_request("version must be an integer")
    state = body.get("state")
    if not isinstance(state, dict) or not state:
        raise bad_request("state must be an object with desired and/or reported")
    return {
        "state": parse_state(state, SECTIONS),
        "version": version,
        "client_token": token,
        "token_field": field,
    }


def parse_state(state: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """Check the sections of a write: each an object, or null to clear the section."""
    unknown = set(state) - set(allowed)
    if unknown:
        raise bad_request(f"state may only hold {' and '.join(allowed)}")
    for section, patch in state.items():
        if patch is not None and not isinstance(patch, dict):
            raise bad_request(f"state.{section} must be an object or null")
        check_values(patch, f"state.{section}")
    return state


def is_unicode(value: str) -> bool:
    """False for a string holding a lone surrogate (JSON ``"\\ud800"`` decodes to one):
    storage keeps UTF-8 text, so such a string could not be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_values(patch: Any, where: str) -> None:
    """Depth at most 6, only finite numbers (JSON has no NaN or Infinity) and only
    valid Unicode text in keys and strings."""
    if patch is None:
        return
    if depth(patch) > MAX_DEPTH:
        raise bad_request(f"{where} is nested deeper than {MAX_DEPTH} levels")
    stack = [patch]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if not all(is_unicode(key) for key in node):
                raise bad_request(f"{where} holds a key that is not valid Unicode text")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise bad_request(f"{where} holds a number JSON cannot represent")
        elif isinstance(node, str) and not is_unicode(node):
            raise bad_request(f"{where} holds a string that is not valid Unicode text")


# -- merge and metadata ------------------------------------------------------------------


def merge(target: dict, meta: dict, patch: dict, now: float) -> None:
    """Merge ``patch`` into ``target`` in place, stamping ``meta`` alongside.

    ``None`` deletes a field and its metadata; objects merge key by key (an object that
    ends up empty is removed); anything else, arrays included, replaces the old value
    whole and gets one timestamp.
    """
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
                meta[key] = {}
            elif not isinstance(meta.get(key), dict) or _is_stamp(meta[key]):
                meta[key] = {}
            merge(target[key], meta[key], value, now)
            if not target[key]:
                del target[key]
                meta.pop(key, None)
        else:
            target[key] = value
            meta[key] = {"timestamp": now}


def _is_stamp(meta: Any) -> bool:
    return (
        isinstance(meta, dict)
        and set(meta) == {"timestamp"}
        and not isinstance(meta["timestamp"], dict)
    )


# -- delta ------------------------------------------------------------------------------


def delta(desired: dict, reported: dict) -> dict:
    """Desired fields missing from or different in reported (full paths, arrays whole)."""
    out: dict = {}
    for key, want in desired.items():
        have = reported.get(key, _MISSING)
        if isinstance(want, dict) and isinstance(have, dict):
            sub = delta(want, have)
            if sub:
                out[key] = sub
        elif have is _MISSING or not same(want, have):
            out[key] = want
    return out


_MISSING = object()


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (as Python would have it), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def document_size(desired: dict, reported: dict) -> int:
    """Bytes of the state document (desired + reported, compact JSON, no metadata)."""
    text = json.dumps({"desired": desired, "reported": reported}, separators=(",", ":"))
    return len(text.encode())
