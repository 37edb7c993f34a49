"""Which room a URL names: public rooms by name, private rooms by unguessable ID.

A 64-hex string is always read as an object ID (CONTRACT § Chat): one that is not a
valid ID of ``chat.Room`` is not found, and never falls back to being a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from durable_core.exceptions import InvalidObjectId
from durable_core.registry import get_namespace
from durable_core.stubs import ObjectStub

NAMESPACE = "chat.Room"
ROOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ROOM_ID = re.compile(r"[0-9A-Fa-f]{64}")


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
    namespace = get_namespace(NAMESPACE)
    if ROOM_ID.fullmatch(room):
        try:
            object_id = namespace.id_from_string(room)
        except InvalidObjectId:
            raise RoomNotFound("no such room") from None
        return RoomRef(room, True, namespace.get(object_id))
    if ROOM_NAME.fullmatch(room):
        return RoomRef(room, False, namespace.get_by_name(room))
    raise RoomNotFound("room names are 1-64 characters of A-Z, a-z, 0-9, _ and -")


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
        if ROOM_NAME.fullmatch(r["name"])
    ]
