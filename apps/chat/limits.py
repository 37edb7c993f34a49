"""Per-IP limits of the chat, through the rate limiter app: ``chat`` for sends,
``chat_read`` for the reads with large answers (a hello's backlog or resume of up to
1,000 messages, a history page), so cheap requests cannot make large answers without end.

Checked at the edges (the WebSocket front and the REST view), before the room is
involved: a client over its limit costs the room no turn, the room's turns never await
another object, and one IP is limited across all rooms because the key is the IP alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from apps.ratelimit import service
from durable_core.exceptions import DurableError

logger = logging.getLogger(__name__)

POLICY = "chat"
READ_POLICY = "chat_read"
# When the limiter cannot decide, the client is told to come back after this long.
UNAVAILABLE_RETRY_AFTER = 1.0


@dataclass(frozen=True)
class SendRefused:
    """Why a send was not admitted: over the limit (429), or the limiter could not
    decide (503); ``retry_after`` in seconds either way."""

    retry_after: float
    status: int = 429
    message: str = "too many messages; wait a moment"


async def check_send(client_ip: str) -> SendRefused | None:
    """Spend one send of ``client_ip``; returns None when admitted, else the refusal.

    No ``chat`` policy (``CHAT_RATE_LIMIT=0``) means unlimited. A limiter that cannot
    decide refuses (issue 16 §4): it is overloaded precisely when one IP sends more than
    its mailbox holds at once, so admitting on failure would let a flood through.
    """
    return await _check(POLICY, client_ip)


async def check_read(client_ip: str) -> SendRefused | None:
    """Spend one large read (hello, history) of ``client_ip``, as ``check_send`` does."""
    refused = await _check(READ_POLICY, client_ip)
    if refused is not None and refused.status == 429:
        return SendRefused(refused.retry_after, 429, "too many history requests; wait a moment")
    return refused


async def _check(policy: str, client_ip: str) -> SendRefused | None:
    if service.get_policy(policy) is None:
        return None
    try:
        decision = await service.consume(policy, client_ip[:256] or "unknown")
    except (service.UnknownPolicy, service.InvalidKey):
        return None
    except DurableError as exc:
        logger.warning("chat rate limiter unavailable for %s, send refused: %s", client_ip, exc)
        return SendRefused(
            UNAVAILABLE_RETRY_AFTER, 503, "the rate limiter is busy; try again in a moment"
        )
    if decision.allowed:
        return None
    return SendRefused(max(decision.retry_after, 0.001))
