"""Object IDs: 64 lowercase hex chars, bound to their namespace by a MAC.

An ID is 32 bytes: 16 bytes derived from a name (or random), then 16 bytes of
HMAC-SHA256 over ``namespace + first half``. The key is a dedicated ID key (generated
into VAR_DIR on first run unless configured), never ``SECRET_KEY``: rotating the secret
key must not change every object's address.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .conf import get_setting, get_var_dir
from .exceptions import InvalidObjectId

_HEX64 = re.compile(r"[0-9a-f]{64}")
_key_lock = threading.Lock()
_key: bytes | None = None


def get_id_key() -> bytes:
    """The ID MAC key: ``ID_KEY`` setting (hex) or the key file, created on first use."""
    global _key
    if _key is not None:
        return _key
    with _key_lock:
        if _key is None:
            _key = _load_or_create_key()
    return _key


def reset_id_key_cache() -> None:
    """Forget the cached key (tests that switch VAR_DIR call this)."""
    global _key
    _key = None


def _load_or_create_key() -> bytes:
    configured = get_setting("ID_KEY")
    if configured:
        return bytes.fromhex(configured)
    path = Path(get_setting("ID_KEY_FILE") or get_var_dir() / "id_key")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once agree on one key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process may be writing it this instant; it takes microseconds.
        for _ in range(100):
            text = path.read_text().strip()
            if len(text) == 64:
                return bytes.fromhex(text)
            time.sleep(0.01)
        raise ImproperlyConfigured(
            f"ID key file {path} is not 64 hex characters; restore it (object IDs depend on "
            "it) or set DURABLE_OBJECTS['ID_KEY']"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return bytes.fromhex(path.read_text().strip())


def _mac(namespace: str, body: bytes) -> bytes:
    msg = b"id:" + namespace.encode() + b"\0" + body
    return hmac.new(get_id_key(), msg, hashlib.sha256).digest()[:16]


class ObjectId:
    """The address of one durable object within its namespace."""

    __slots__ = ("hex", "name", "namespace")

    def __init__(self, namespace: str, hex_id: str, name: str | None = None) -> None:
        self.namespace = namespace
        self.hex = hex_id
        self.name = name

    @classmethod
    def from_name(cls, namespace: str, name: str) -> ObjectId:
        """The deterministic ID of ``name`` in ``namespace``."""
        if not isinstance(name, str) or not name:
            raise InvalidObjectId("an object name must be a non-empty string")
        digest = hmac.new(
            get_id_key(), b"name:" + namespace.encode() + b"\0" + name.encode(), hashlib.sha256
        ).digest()[:16]
        return cls(namespace, (digest + _mac(namespace, digest)).hex(), name)

    @classmethod
    def new_unique(cls, namespace: str) -> ObjectId:
        """A fresh random ID in ``namespace``."""
        body = secrets.token_bytes(16)
        return cls(namespace, (body + _mac(namespace, body)).hex())

    @classmethod
    def from_string(cls, namespace: str, value: str) -> ObjectId:
        """Parse a 64-hex ID, checking that it was made for ``namespace``.

        Raises:
            InvalidObjectId: malformed, or minted for another namespace.
        """
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise InvalidObjectId("an object ID is 64 lowercase hex characters")
        raw = bytes.fromhex(value)
        if not hmac.compare_digest(raw[16:], _mac(namespace, raw[:16])):
            raise InvalidObjectId(f"not an ID of namespace {namespace!r}")
        return cls(namespace, value)

    @property
    def key(self) -> str:
        """``namespace:hex``, the object's key in leases, logs and the host's tables."""
        return f"{self.namespace}:{self.hex}"

    def __str__(self) -> str:
        return self.hex

    def __repr__(self) -> str:
        label = f" name={self.name!r}" if self.name else ""
        return f"<ObjectId {self.namespace}:{self.hex[:12]}…{label}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ObjectId)
            and other.namespace == self.namespace
            and other.hex == self.hex
        )

    def __hash__(self) -> int:
        return hash((self.namespace, self.hex))
