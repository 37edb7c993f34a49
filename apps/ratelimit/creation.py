"""Per-client limits on creating objects through the public APIs (issue 16 §9).

Every request of a public route that would bring a new object into being (a device
twin, a document, a rate-limit key, a socket on an unknown name) spends one unit of the
client's ``create`` policy first: ``CREATE_RATE_LIMIT=<n>/<seconds>`` (environment;
generous by default, ``0`` disables it), keyed by the client address in the server key
space, so nobody can spend it for someone else. Requests to objects that already exist
cost nothing: an object exists when its record does (it stored something) and is not
deleted. A limiter that cannot decide refuses (503), as chat's does (issue 16 §4).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from durable_core.exceptions import DurableError
from durable_core.ids import ObjectId
from durable_core.models import ObjectRecord
from durable_core.web import ApiError, scope_client_ip

from . import service

logger = logging.getLogger(__name__)

POLICY = "create"
# Objects seen to exist are not looked up again for this long (one Django query saved
# per request on hot objects); a stale entry lets at most a creation through uncounted.
KNOWN_SECONDS = 30.0
KNOWN_MAX = 10_000
UNAVAILABLE_RETRY_AFTER = 1.0
CLOSE_TRY_AGAIN = 1013  # WebSocket close code: try again later

_known: OrderedDict[str, float] = OrderedDict()


@dataclass(frozen=True)
class CreateRefused:
    """A creation not admitted: over the client's limit (429) or the limiter could not
    decide (503); ``retry_after`` in seconds either way."""

    retry_after: float
    status: int = 429
    message: str = "too many new objects from this client; try again later"

    def as_api_error(self) -> ApiError:
        """The contract's error answer, with ``Retry-After``."""
        return ApiError(
            self.status,
            "rate_limited" if self.status == 429 else "unavailable",
            self.message,
            headers={"Retry-After": str(max(1, math.ceil(self.retry_after)))},
            retry_after=math.ceil(self.retry_after * 10) / 10,
        )


async def aexists(object_id: ObjectId) -> bool:
    """True when the object has stored data and was not deleted (its record says so)."""
    key = object_id.key
    now = time.monotonic()
    seen = _known.get(key)
    if seen is not None and now - seen < KNOWN_SECONDS:
        return True
    found = await ObjectRecord.objects.filter(
        namespace=object_id.namespace, object_id=object_id.hex, deleted=False
    ).aexists()
    if found:
        _known[key] = now
        _known.move_to_end(key)
        while len(_known) > KNOWN_MAX:
            _known.popitem(last=False)
    else:
        _known.pop(key, None)
    return found


async def check_create(client_ip: str, object_id: ObjectId) -> CreateRefused | None:
    """Spend one creation of ``client_ip`` if ``object_id`` does not exist yet; None when
    admitted (or nothing is created), else the refusal."""
    if service.get_policy(POLICY) is None or await aexists(object_id):
        return None
    try:
        decision = await service.consume(POLICY, client_ip[:256] or "unknown")
    except (service.UnknownPolicy, service.InvalidKey):
        return None
    except DurableError as exc:
        logger.warning("creation limiter unavailable for %s, refused: %s", client_ip, exc)
        return CreateRefused(
            UNAVAILABLE_RETRY_AFTER, 503, "the rate limiter is busy; try again in a moment"
        )
    if decision.allowed:
        return None
    return CreateRefused(max(decision.retry_after, 0.001))


async def araise_if_refused(client_ip: str, object_id: ObjectId) -> None:
    """``check_create`` for REST views: raises the refusal as an ``ApiError``."""
    refused = await check_create(client_ip, object_id)
    if refused is not None:
        raise refused.as_api_error()


async def arefuse_socket(consumer) -> bool:
    """For a WebSocket front's ``websocket_connect``: a socket on an object that does not
    exist yet costs a creation (an accepted socket is stored with its object). True when
    refused: the socket is then accepted and closed at once with 1013 (try again later),
    so clients see why, and nothing reaches the object."""
    try:
        stub = consumer.get_object_stub()
    except (LookupError, ValueError, DurableError):
        return False  # the front answers a bad address itself
    if stub is None:
        return False
    refused = await check_create(scope_client_ip(consumer.scope), stub.id)
    if refused is None:
        return False
    consumer.state = "closed"  # the front's frame handlers ignore a closed socket
    await consumer.accept()
    await consumer.close(code=CLOSE_TRY_AGAIN, reason=refused.message[:120])
    return True
