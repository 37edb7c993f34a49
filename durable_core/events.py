"""What an active object handles, and the turn that handles it (DESIGN §3, §6).

Kept apart from ``turns.py`` so that the WebSocket and alarm parts of a turn
(``websockets.py``, ``alarms.py``) can use them without importing the turn machinery.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import InvalidArgument

if TYPE_CHECKING:
    from .turns import ActiveObject

Reply = tuple[str, Any]  # ("ok", result JSON text) or ("err", error envelope)

_current_turn: contextvars.ContextVar[TurnState | None] = contextvars.ContextVar(
    "durable_current_turn", default=None
)


@dataclass
class Event:
    """One thing for an object to handle: an RPC, an alarm or a WebSocket event."""

    kind: str  # "call" | "alarm" | "ws" (method: connect, message, close, front_dead)
    future: asyncio.Future
    method: str = ""
    payload: str = "[[], {}]"  # JSON [args, kwargs]: a copy, as on the remote path
    call_id: str = ""
    retry: bool = False
    lifecycle: bool = False  # never refused by the mailbox bound (WebSocket connect/close)


@dataclass
class TurnState:
    """The running turn, visible to code it calls through a context variable."""

    active: ActiveObject
    holds_gate: bool = False  # after re-entering from an open gate, the turn owns the gate
    gate_open: bool = False
    user_code_ran: bool = False  # errors before it (bad method, bad args) need no reset
    outbox: list[tuple[str, str, dict]] = field(default_factory=list)  # (front, ws id, frame)


def get_current_turn() -> TurnState | None:
    """The turn running in this task, if any."""
    return _current_turn.get()


def set_current_turn(state: TurnState) -> contextvars.Token:
    """Mark ``state`` as the running turn; returns the token to reset it with."""
    return _current_turn.set(state)


def reset_current_turn(token: contextvars.Token | None) -> None:
    """Undo ``set_current_turn`` (None: mark that no turn runs)."""
    if token is None:
        _current_turn.set(None)
    else:
        _current_turn.reset(token)


def encode_json(value: Any, what: str) -> str:
    """JSON-encode a call's arguments or result; raises InvalidArgument."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must be JSON-compatible: {exc}") from exc


def settle(fut: asyncio.Future, reply: Reply) -> None:
    """Resolve a caller's future unless it is already done (e.g. cancelled)."""
    if not fut.done():
        fut.set_result(reply)


def consume_result(fut: asyncio.Future) -> None:
    """Done-callback for internal events nobody awaits: retrieve their result."""
    if not fut.cancelled():
        fut.result()


def internal_event(kind: str, method: str = "", payload: str = "null") -> Event:
    """An event the runtime sends an object itself (alarm timer, dead front)."""
    future = asyncio.get_running_loop().create_future()
    future.add_done_callback(consume_result)
    return Event(kind, future, method, payload, lifecycle=True)
