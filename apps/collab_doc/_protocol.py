"""The y-websocket wire protocol: strict parsing and encoding of its binary frames.

A frame is one message: ``varUint(type)`` then, for sync (0), ``varUint(step)`` and a
``varUint8Array`` payload (a state vector for step 1, an update for step 2 and update);
for awareness (1), a ``varUint8Array`` holding ``varUint(n)`` entries of
``(varUint client, varUint clock, varString JSON state)``; query-awareness (3) has no body.
Numbers are lib0 varUints (7 bits per byte, low bits first). pycrdt's own ``Decoder``
does not check bounds, so every frame from a client is parsed here, completely, before
anything acts on it: a frame that is not exactly one well-formed message is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pycrdt

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

EMPTY_UPDATE = b"\x00\x00"

# WebSocket close codes (RFC 6455 §7.4.1) a front uses for a refused frame.
CLOSE_UNSUPPORTED = 1003  # a text frame, or a message type this server does not speak
CLOSE_INVALID = 1007  # a binary frame that is not a well-formed y-websocket message
CLOSE_TOO_BIG = 1009  # over the message or awareness size limit

MAX_VARUINT_BYTES = 8  # lib0 numbers are at most 53 bits


class ProtocolError(ValueError):
    """Raised when a frame breaks the protocol; ``close_code`` says how to close."""

    def __init__(self, message: str, close_code: int = CLOSE_INVALID) -> None:
        super().__init__(message)
        self.close_code = close_code


@dataclass(frozen=True)
class Message:
    """One parsed frame: ``kind`` (MESSAGE_*), ``step`` (SYNC_* or None), ``payload``."""

    kind: int
    step: int | None
    payload: bytes


@dataclass(frozen=True)
class AwarenessEntry:
    """One client's awareness state; ``state`` None means the client left."""

    client_id: int
    clock: int
    state_json: str

    @property
    def removed(self) -> bool:
        return self.state_json == "null"


def write_var_uint(value: int) -> bytes:
    """The lib0 varUint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    """A length-prefixed byte array (lib0 ``writeVarUint8Array``)."""
    return write_var_uint(len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def var_uint(self) -> int:
        value = shift = 0
        for _ in range(MAX_VARUINT_BYTES):
            if self.pos >= len(self.data):
                raise ProtocolError("truncated number")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise ProtocolError("number longer than 8 bytes")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("length prefix past the end of the frame")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def at_end(self) -> bool:
        return self.pos == len(self.data)


def parse_message(frame: bytes) -> Message:
    """Parse one client frame completely (no trailing bytes); raises ProtocolError."""
    reader = _Reader(frame)
    kind = reader.var_uint()
    step: int | None = None
    if kind == MESSAGE_SYNC:
        step = reader.var_uint()
        if step not in (SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE):
            raise ProtocolError(f"unknown sync step {step}")
        payload = reader.var_bytes()
    elif kind == MESSAGE_AWARENESS:
        payload = reader.var_bytes()
    elif kind == MESSAGE_QUERY_AWARENESS:
        payload = b""
    else:
        raise ProtocolError(f"unsupported message type {kind}", CLOSE_UNSUPPORTED)
    if not reader.at_end():
        raise ProtocolError("trailing bytes after the message")
    return Message(kind, step, payload)


def parse_state_vector(data: bytes) -> dict[int, int]:
    """A state vector (``varUint n`` then ``n`` pairs of client, clock)."""
    reader = _Reader(data)
    count = reader.var_uint()
    if count > len(data):
        raise ProtocolError("state vector count larger than the frame")
    vector = {}
    for _ in range(count):
        client = reader.var_uint()
        vector[client] = reader.var_uint()
    if not reader.at_end():
        raise ProtocolError("trailing bytes after the state vector")
    return vector


def holds_unknown(diff: bytes, state: dict[int, int]) -> bool:
    """True when ``diff`` (an update minus a document's state vector, from
    ``pycrdt.get_update(update, state_vector)``) still holds structs, or deletes a
    range the document does not know (clock past ``state``): the update is not a
    duplicate. A diff is a v1 update: ``varUint`` number of clients with structs, then
    the delete set, ``varUint n`` then per client ``client, count, (clock, len)*count``.
    """
    reader = _Reader(diff)
    if reader.var_uint():
        return True
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        for _ in range(reader.var_uint()):
            clock, length = reader.var_uint(), reader.var_uint()
            if clock + length > state.get(client, 0):
                return True
    return False


def check_update(update: bytes) -> None:
    """Decode a Yjs v1 update completely (pycrdt/yrs) without applying it."""
    if update == EMPTY_UPDATE:
        return
    try:
        pycrdt.get_state(update)
    except Exception as exc:  # yrs reports any decoding failure as ValueError
        raise ProtocolError(f"not a Yjs update: {exc}") from None


def parse_awareness(payload: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update; every state must be JSON (``null`` = left)."""
    reader = _Reader(payload)
    count = reader.var_uint()
    if count > len(payload):
        raise ProtocolError("awareness count larger than the frame")
    entries = []
    for _ in range(count):
        client = reader.var_uint()
        clock = reader.var_uint()
        raw = reader.var_bytes()
        try:
            text = raw.decode("utf-8")
            json.loads(text)
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError("awareness state is not JSON") from None
        entries.append(AwarenessEntry(client, clock, text))
    if not reader.at_end():
        raise ProtocolError("trailing bytes after the awareness update")
    return entries


def validate_frame(frame: bytes, *, max_awareness_bytes: int) -> Message:
    """Everything a front checks before a frame reaches the document object."""
    message = parse_message(frame)
    if message.kind == MESSAGE_SYNC:
        if message.step == SYNC_STEP1:
            parse_state_vector(message.payload)
        else:
            check_update(message.payload)
    elif message.kind == MESSAGE_AWARENESS:
        if len(message.payload) > max_awareness_bytes:
            raise ProtocolError("awareness update too big", CLOSE_TOO_BIG)
        parse_awareness(message.payload)
    return message


# -- encoding --------------------------------------------------------------------------


def sync_step1(state_vector: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP1)) + write_var_bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP2)) + write_var_bytes(update)


def sync_update(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_UPDATE)) + write_var_bytes(update)


def query_awareness() -> bytes:
    return bytes((MESSAGE_QUERY_AWARENESS,))


def awareness_message(entries: list[AwarenessEntry]) -> bytes:
    body = bytearray(write_var_uint(len(entries)))
    for entry in entries:
        body += write_var_uint(entry.client_id)
        body += write_var_uint(entry.clock)
        body += write_var_bytes(entry.state_json.encode("utf-8"))
    return bytes((MESSAGE_AWARENESS,)) + write_var_bytes(bytes(body))
