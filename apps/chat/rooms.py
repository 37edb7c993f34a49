"""Which room a URL names: public rooms by name, private rooms by unguessable ID.

A 64-hex string is always read as an object ID (CONTRACT § Chat): one that is not a
valid ID of ``chat.Room`` is not found, and never falls back to being a name.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_core.exceptions import InvalidObjectId
from durable_core.registry import ADDRESS_ID_RE, ADDRESS_NAME_RE, get_namespace
from durable_core.stubs import ObjectStub

NAMESPACE = "chat.Room"


class RoomNotFound(LookupError):
    """Raised when a room string is neither a valid name nor a valid room ID; final."""


@dataclass(frozen=True)
class RoomRef:
    """A resolved room: how it was addressed, whether it is private, and its stub."""

    room: str
    private: bool
    stub: ObjectStub


def get_room(room: str) -> RoomRef:
    """Resolve ``room`` (a name, or a private room's ID); raises RoomNotFound."""
    try:
        stub = get_namespace(NAMESPACE).resolve(room)
    except InvalidObjectId as exc:
        raise RoomNotFound(f"no such room: {exc}") from None
    return RoomRef(room, bool(ADDRESS_ID_RE.fullmatch(room)), stub)


def new_private_room() -> str:
    """The ID of a new private room (nothing is stored until someone uses it)."""
    return get_namespace(NAMESPACE).new_unique_id().hex


async def aget_active_rooms(limit: int = 20) -> list[dict]:
    """Public rooms that stored something, most recently active first.

    Read from the runtime's object records, so listing wakes no room. Private rooms
    (addressed by ID, so recorded without a name) are never listed.
    """
    from durable_core.models import ObjectRecord

    records = (
        ObjectRecord.objects.filter(namespace=NAMESPACE, deleted=False)
        .exclude(name="")
        .order_by("-last_active")
        .values("name", "last_active")[:limit]
    )
    return [
        {"room": r["name"], "last_active": r["last_active"].timestamp()}
        async for r in records
        if ADDRESS_NAME_RE.fullmatch(r["name"])
    ]
