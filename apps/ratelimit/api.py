"""REST API of the ratelimit app (a django-ninja router mounted at /api/ratelimit/).

``POST /api/ratelimit/<policy>/<key>`` (optional JSON ``{"cost": n}``) consumes, ``GET``
peeks; both answer ``{"allowed","limit","remaining","reset_after","retry_after"}`` with
the ratelimit headers (``_http.py``). The key is the rest of the path, so keys with ``/``
or other printable characters work (percent-encode what URLs reserve).

Keys here live in their own key space (``public=True``): ``ip:203.0.113.5`` over REST is
not the quota ``@rate_limit(key="ip")`` spends for that address (issue 16 §5).
"""

from __future__ import annotations

import json
import re

from django.http import HttpRequest, HttpResponse
from ninja import Router

from durable_core.exceptions import DurableError
from durable_core.web import client_ip, error_response

from . import creation, service
from ._http import decision_response, unavailable_response

router = Router(tags=["ratelimit"])

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@router.post("/{policy}/{path:key}", summary="Consume quota (cost 1 unless given)")
async def consume(request: HttpRequest, policy: str, key: str) -> HttpResponse:
    """Spend ``cost`` units of the key's quota if they fit in every window: 200 or 429.

    Optional ``Idempotency-Key`` header: a retried request with the same key counts once.
    """
    refused = _not_public(policy)
    if refused is not None:
        return refused
    cost = 1
    if request.body:
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):  # deeply nested JSON raises RecursionError
            return error_response(400, "bad_request", "body must be JSON")
        if not isinstance(body, dict):
            return error_response(400, "bad_request", 'body must be a JSON object {"cost": n}')
        cost = body.get("cost", 1)
    request_id = request.headers.get("Idempotency-Key")
    if request_id is not None and not _IDEMPOTENCY_KEY.fullmatch(request_id):
        return error_response(400, "bad_request", "Idempotency-Key: 1-128 chars of [A-Za-z0-9_.:-]")
    try:
        # A new key is a new limiter object: it costs the client a creation (issue 16 §9).
        limiter = service.limiter_id(policy, key, public=True)
    except service.RateLimitError as exc:
        return error_response(400, "bad_request", str(exc))
    await creation.araise_if_refused(client_ip(request), limiter)
    return await _decide(service.consume(policy, key, cost, request_id=request_id, public=True))


@router.get("/{policy}/{path:key}", summary="Peek: the decision a request would get now")
async def peek(request: HttpRequest, policy: str, key: str) -> HttpResponse:
    """The decision a request of cost 1 would get now, consuming nothing."""
    return _not_public(policy) or await _decide(service.peek(policy, key, public=True))


@router.api_operation(["GET", "POST"], "/{policy}/", include_in_schema=False)
async def missing_key(request: HttpRequest, policy: str) -> HttpResponse:
    """An empty key: 404 for an unknown policy, else 400 (keys are 1 to 256 characters)."""
    return _not_public(policy) or error_response(
        400, "bad_request", "a key is 1 to 256 printable characters"
    )


def _not_public(name: str) -> HttpResponse | None:
    """404 for a policy that does not exist or is not public (``"public": False``: its
    quota is spent by server code only, e.g. chat's per-IP limit)."""
    try:
        policy = service.get_policy(name)
    except ValueError:
        policy = None
    if policy is None or not policy.public:
        return error_response(404, "not_found", f"no rate limit policy named {name!r}")
    return None


async def _decide(pending) -> HttpResponse:
    try:
        decision = await pending
    except service.UnknownPolicy as exc:
        return error_response(404, "not_found", str(exc))
    except service.RateLimitError as exc:
        return error_response(400, "bad_request", str(exc))
    except DurableError as exc:
        return unavailable_response(exc)
    return decision_response(decision)
