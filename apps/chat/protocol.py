"""The chat protocol's limits and input checks, shared by the room, the front and REST.

One place decides what a valid name, text, ``client_msg_id`` or page size is, so the
WebSocket and the REST paths can never disagree (CONTRACT § Chat).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_NAME_CHARS = 32
MAX_TEXT_CHARS = 2000
MAX_CLIENT_MSG_ID_CHARS = 128
# A client id is random (the page makes 128 bits); at least 16 characters, so that a
# guessable one is not accepted by mistake for a random one.
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
BACKLOG_MESSAGES = 100  # sent after hello without ``since``
MAX_RESUME_MESSAGES = 1000  # sent after hello with ``since``; more is "truncated"
HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 100
# Message ids are SQLite rowids: a signed 64-bit integer. A larger one cannot be bound
# as a query parameter (OverflowError), so it is refused as a bad request.
MAX_MESSAGE_ID = 2**63 - 1
# A frame this large cannot hold a valid message (2,000 characters JSON-escaped as
# \uXXXX are 12 KB); the front answers it with ``too_long`` without waking the room.
MAX_FRAME_BYTES = 64 * 1024


class ChatError(Exception):
    """Raised for a request the protocol refuses; ``code`` is the contract's error code.

    Sent back to the client as ``{"type": "error", "code", "message", ...extra}``; the
    connection stays open, so retrying with a corrected request works.
    """

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def frame(self) -> dict[str, Any]:
        """The WebSocket error frame."""
        return {"type": "error", "code": self.code, "message": self.message, **self.extra}


def is_unicode(value: str) -> bool:
    """True unless ``value`` holds a lone surrogate (JSON's ``"\\ud800"`` decodes to one).

    Such a string can be neither stored (SQLite text is UTF-8) nor sent in a WebSocket
    text frame, so every string the chat keeps or echoes is checked with this first.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_name(value: object) -> str:
    """A display name: 1-32 characters after trimming, no control characters."""
    if not isinstance(value, str):
        raise ChatError("bad_name", "name must be a string of 1-32 characters")
    if not is_unicode(value):
        raise ChatError("bad_name", "name must be valid Unicode text")
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise ChatError("bad_name", f"name must be 1-{MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ChatError("bad_name", "name must not contain control characters")
    return name


def check_text(value: object) -> str:
    """A message text: 1-2000 characters, not only whitespace."""
    if not isinstance(value, str):
        raise ChatError("bad_request", "text must be a string")
    if not is_unicode(value):
        raise ChatError("bad_request", "text must be valid Unicode text (no lone surrogates)")
    if len(value) > MAX_TEXT_CHARS:
        raise ChatError("too_long", f"a message is at most {MAX_TEXT_CHARS} characters")
    if not value.strip():
        raise ChatError("bad_request", "text must not be empty")
    return value


def check_client_msg_id(value: object) -> str | None:
    """An optional client message id: 1-128 printable characters."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_CLIENT_MSG_ID_CHARS
        or not value.isprintable()
        or not is_unicode(value)
    ):
        raise ChatError(
            "bad_request",
            f"client_msg_id must be 1-{MAX_CLIENT_MSG_ID_CHARS} printable characters",
        )
    return value


def check_client_id(value: object) -> str | None:
    """An optional client id: 16-64 chars of ``[A-Za-z0-9_-]``, random, kept by the page
    across reconnects. With one, sends are deduplicated by (client id, ``client_msg_id``),
    so nobody who does not know it can pre-claim a message id (issue 16 §12)."""
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_ID_RE.fullmatch(value):
        raise ChatError("bad_request", "client_id must be 16-64 chars of [A-Za-z0-9_-]")
    return value


def check_message_id(value: object, field: str) -> int | None:
    """An optional message id (``since``, ``before``): an integer 0 to 2**63-1.

    A float (``1e30``, also ``5.0``) is refused: ids are JSON integers.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MESSAGE_ID:
        raise ChatError(
            "bad_request", f"{field} must be a message id (an integer 0-{MAX_MESSAGE_ID})"
        )
    return value


def cmid_extra(value: object) -> dict[str, Any]:
    """``client_msg_id`` for an error frame, when the client sent one that can be echoed."""
    if isinstance(value, str) and len(value) <= MAX_CLIENT_MSG_ID_CHARS and is_unicode(value):
        return {"client_msg_id": value}
    return {}


def check_limit(value: object) -> int:
    """A history page size: 1-100, default 50."""
    if value is None:
        return HISTORY_DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChatError("bad_request", "limit must be an integer")
    if not 1 <= value <= HISTORY_MAX_LIMIT:
        raise ChatError("bad_request", f"limit must be 1-{HISTORY_MAX_LIMIT}")
    return value
