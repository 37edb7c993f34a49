"""Pages of the chat app: the lobby (/chat/) and a room (/chat/<room>/)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .protocol import MAX_NAME_CHARS, MAX_TEXT_CHARS
from .rooms import RoomNotFound, aget_active_rooms, get_room


async def index(request: HttpRequest) -> HttpResponse:
    """Join a public room by name, create a private one, or pick an active room."""
    rooms = await aget_active_rooms()
    return render(request, "chat/index.html", {"rooms": rooms})


def room(request: HttpRequest, room: str) -> HttpResponse:
    """One room: messages, roster, typing and the composer (driven by chat/room.js)."""
    try:
        ref = get_room(room)
    except RoomNotFound:
        return render(request, "chat/not_found.html", {"room": room}, status=404)
    context = {
        "room": ref.room,
        "private": ref.private,
        "max_name": MAX_NAME_CHARS,
        "max_text": MAX_TEXT_CHARS,
    }
    return render(request, "chat/room.html", context)
