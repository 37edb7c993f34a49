"""What an active object handles, and the turn that handles it (DESIGN §3, §6).

Kept apart from ``turns.py`` so that the WebSocket and alarm parts of a turn
(``websockets.py``, ``alarms.py``) can use them without importing the turn machinery.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
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
    event: Event | None = None
    holds_gate: bool = False  # after re-entering from an open gate, the turn owns the gate
    has_gate: bool = False  # the turn holds the input gate right now
    gate_open: bool = False
    user_code_ran: bool = False  # errors before it (bad method, bad args) need no reset
    wrote: bool = False  # an earlier segment of the turn (before an open gate) wrote
    destroy: bool = False  # ctx.destroy() was called: honoured only if the turn succeeds
    calls_made: int = 0  # calls to other objects so far (their call ids derive from it)
    outbox: list[tuple[str, str, dict]] = field(default_factory=list)  # (front, ws id, frame)

    def nested_call_id(self, target: str, method: str) -> str | None:
        """A call id for the turn's next call to another object, derived from this turn's
        own call id: a retried turn re-sends its calls under the same ids, so the callee
        recognises them (DESIGN §3.7). None when this turn has no call id."""
        if self.event is None or not self.event.call_id:
            return None
        self.calls_made += 1
        seed = f"{self.event.call_id}|{target}|{method}|{self.calls_made}"
        return hashlib.sha256(seed.encode()).hexdigest()[:32]


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
