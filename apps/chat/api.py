"""REST API of the chat app (a django-ninja router mounted at /api/chat/ by config/api.py).

Anonymous JSON, no CSRF (no cookie authentication). Errors are the contract's JSON
shape; a POSTed message is stored by the room and broadcast to its live sockets.
"""

from __future__ import annotations

import math

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from durable_core.api import ErrorOut
from durable_core.web import ApiError, client_ip

from .limits import SendRefused, check_read, check_send
from .protocol import (
    ChatError,
    check_client_id,
    check_client_msg_id,
    check_limit,
    check_message_id,
    check_name,
    check_text,
)
from .rooms import RoomNotFound, RoomRef, aget_active_rooms, get_room, new_private_room

router = Router(tags=["chat"])


class MessageOut(Schema):
    id: int
    name: str
    text: str
    ts: float
    client_msg_id: str | None = None


class MessagesOut(Schema):
    messages: list[MessageOut]
    has_more: bool


class RoomInfoOut(Schema):
    room: str
    online: list[str]
    messages: int


class CreatedRoomOut(Schema):
    room: str


class ActiveRoomOut(Schema):
    room: str
    last_active: float


class ActiveRoomsOut(Schema):
    rooms: list[ActiveRoomOut]


class RefusedOut(ErrorOut):
    """429 ``rate_limited`` (the chat's per-client limit) or 503 ``unavailable``, with
    ``retry_after`` seconds (also as the ``Retry-After`` header)."""

    retry_after: float | None = None


class PostIn(Schema):
    """A message; other keys are ignored."""

    name: str = Field(description="1-32 characters")
    text: str = Field(description="1-2000 characters")
    client_msg_id: str | None = Field(None, description="the same id again is stored once")
    client_id: str | None = Field(None, description="whose client_msg_id it is (default: name)")


class PageQuery(Schema):
    before: int | None = Field(None, description="messages older than this id")
    limit: int = Field(50, description="1-100")


# The errors each kind of route can answer, declared so that /api/openapi.json shows them:
# a room name that names no room (404), the runtime unable to answer now (503); reads and
# sends spend the client's limit (429) and check their input (400).
_ROOM = {404: ErrorOut, 503: RefusedOut}
_LIMITED = {**_ROOM, 400: ErrorOut, 429: RefusedOut}


def _room(room: str) -> RoomRef:
    try:
        return get_room(room)
    except RoomNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


def _raise_for(result: dict) -> dict:
    """Turn the room's ``{"error", "message"}`` answer into a 400."""
    if "error" in result:
        raise ApiError(400, result["error"], result["message"])
    return result


@router.get("rooms", response=ActiveRoomsOut, summary="Active public rooms")
async def list_rooms(request: HttpRequest):
    """Public rooms that have stored something, most recently active first (at most 20)."""
    return {"rooms": await aget_active_rooms()}


@router.post("rooms", response={201: CreatedRoomOut}, summary="Create a private room")
async def create_room(request: HttpRequest):
    """A new private room: its unguessable 64-hex ID is its name in every other route."""
    return Status(201, {"room": new_private_room()})


@router.get("rooms/{room}", response={200: RoomInfoOut, **_ROOM}, summary="Room info")
async def room_info(request: HttpRequest, room: str):
    """Who is online and how many messages the room holds."""
    ref = _room(room)
    info = await ref.stub.info()
    return {"room": ref.room, **info}


@router.get(
    "rooms/{room}/messages", response={200: MessagesOut, **_LIMITED}, summary="Message history"
)
async def room_messages(request: HttpRequest, room: str, page: Query[PageQuery]):
    """The newest ``limit`` messages older than ``before`` (or the newest), oldest first."""
    ref = _room(room)
    try:
        before = check_message_id(page.before, "before")
        limit = check_limit(page.limit)
    except ChatError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    _raise_refusal(await check_read(client_ip(request)))
    return _raise_for(await ref.stub.messages(before, limit))


@router.post(
    "rooms/{room}/messages", response={201: MessageOut, **_LIMITED}, summary="Post a message"
)
async def post_message(request: HttpRequest, room: str, body: PostIn):
    """Store a message (once per ``client_msg_id`` of its sender: ``client_id`` when
    given, else the name) and broadcast it."""
    ref = _room(room)
    try:
        name = check_name(body.name)
        text = check_text(body.text)
        client_msg_id = check_client_msg_id(body.client_msg_id)
        client_id = check_client_id(body.client_id)
    except ChatError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    _raise_refusal(await check_send(client_ip(request)))
    return Status(201, _raise_for(await ref.stub.post(name, text, client_msg_id, client_id)))


def _raise_refusal(refused: SendRefused | None) -> None:
    """A refusal of the chat's limits as the contract's error (429, or 503 + Retry-After)."""
    if refused is not None:
        raise ApiError(
            refused.status,
            "rate_limited" if refused.status == 429 else "unavailable",
            refused.message,
            headers={"Retry-After": str(max(1, math.ceil(refused.retry_after)))},
            retry_after=math.ceil(refused.retry_after * 10) / 10,
        )
