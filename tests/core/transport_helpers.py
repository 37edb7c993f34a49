"""Helpers of the owner-side router tests: a transport that records what it sends,
and the message a remote caller sends for one call."""

from __future__ import annotations

from typing import Any


class RecordingTransport:
    """Stands in for the host's transport: keeps every message it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def stop(self) -> None:
        return None


def call_message(stub: Any, method: str, call_id: str, attempt: int = 0) -> dict[str, Any]:
    """The ``durable.call`` message a caller on another host sends for one attempt."""
    return {
        "type": "durable.call",
        "call_id": call_id,
        "namespace": stub.id.namespace,
        "id": stub.id.hex,
        "name": stub.id.name,
        "kind": "call",
        "method": method,
        "payload": "[[], {}]",
        "retry": False,
        "reply_to": "caller",
        "reply_key": f"{call_id}:{attempt}",
    }
