"""Per-IP send limit of the chat, through the rate limiter app's ``chat`` policy.

Checked at the edges (the WebSocket front and the REST view), before the room is
involved: a client over its limit costs the room no turn, the room's turns never await
another object, and one IP is limited across all rooms because the key is the IP alone.
"""

from __future__ import annotations

import logging

from apps.ratelimit import service
from durable_core.exceptions import DurableError

logger = logging.getLogger(__name__)

POLICY = "chat"


async def check_send(client_ip: str) -> float | None:
    """Spend one send of ``client_ip``; returns seconds to wait when refused, else None.

    No ``chat`` policy (``CHAT_RATE_LIMIT=0``) means unlimited. When the limiter cannot
    be reached the send is let through (chat stays up; the failure is logged).
    """
    if service.get_policy(POLICY) is None:
        return None
    try:
        decision = await service.consume(POLICY, client_ip[:256] or "unknown")
    except (service.UnknownPolicy, service.InvalidKey):
        return None
    except DurableError as exc:
        logger.warning("chat rate limiter unavailable for %s, send allowed: %s", client_ip, exc)
        return None
    if decision.allowed:
        return None
    return max(decision.retry_after, 0.001)
