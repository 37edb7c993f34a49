"""REST API of the ratelimit app (a django-ninja router mounted at /api/ratelimit/).

``POST /api/ratelimit/<policy>/<key>`` (optional JSON ``{"cost": n}``) consumes, ``GET``
peeks; both answer ``{"allowed","limit","remaining","reset_after","retry_after"}`` with
the ratelimit headers (``_http.py``). The key is the rest of the path, so keys with ``/``
or other printable characters work (percent-encode what URLs reserve). Bodies, answers,
headers and errors are declared below, so ``/api/openapi.json`` documents them; the body
and the ``Idempotency-Key`` header are checked by ninja (400) before a view runs.

Keys here live in their own key space (``public=True``): ``ip:203.0.113.5`` over REST is
not the quota ``@rate_limit(key="ip")`` spends for that address (issue 16 §5).
"""

from __future__ import annotations

from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Header, Router, Schema
from pydantic import Field, ModelWrapValidatorHandler, StrictInt, model_validator

from durable_core.api import ErrorOut
from durable_core.exceptions import DurableError
from durable_core.web import client_ip, error_response

from . import creation, service
from ._http import decision_response, unavailable_response

router = Router(tags=["ratelimit"])

_IDEMPOTENCY_KEY = r"^[A-Za-z0-9_.:-]{1,128}$"


class ConsumeIn(Schema):
    """The optional body of a spend: a JSON object; other keys are ignored."""

    cost: StrictInt = Field(1, ge=1, description="units to spend, 1 to the policy's limit")

    @model_validator(mode="wrap")
    @classmethod
    def _json_object(cls, value: Any, handler: ModelWrapValidatorHandler) -> Any:
        # ninja's Schema reads attributes of any value, so without this a bare [1, 2],
        # "cost" or null would pass as a body of defaults instead of being a 400.
        if not isinstance(value, dict | ConsumeIn):
            raise ValueError('the body must be a JSON object {"cost": n}')
        return handler(value)


_NO_BODY = ConsumeIn()  # an empty body: cost 1


class DecisionOut(Schema):
    """A decision (CONTRACT § Rate limiter); times in seconds."""

    allowed: bool
    limit: int = Field(description="the policy's limit per window")
    remaining: int = Field(description="cost that would still be admitted now")
    reset_after: float = Field(description="until the full quota is back")
    retry_after: float = Field(description="until a request of cost 1 fits (0 when it does)")
    at: float = Field(description="when it was decided (epoch seconds, the server's clock)")


class RateLimitedOut(ErrorOut, DecisionOut):
    """429: the contract's error shape (``rate_limited``) with the decision's fields."""


# Answers of both routes: 404 for an unknown (or non-public) policy, 400 for a bad key,
# 503 + Retry-After when the limiter cannot decide now (and fails closed).
_DECISION = {200: DecisionOut, 429: RateLimitedOut, 400: ErrorOut, 404: ErrorOut, 503: ErrorOut}


def _headers(*names: str) -> dict:
    described = {
        "RateLimit-Policy": '"<policy>";q=<limit>;w=<period seconds> (IETF ratelimit headers)',
        "RateLimit": '"<policy>";r=<remaining>;t=<seconds>',
        "Retry-After": "whole seconds to wait (rounded up)",
    }
    return {
        "headers": {
            name: {"description": described[name], "schema": {"type": "string"}} for name in names
        }
    }


_HEADERS_DOC = {
    "responses": {
        200: _headers("RateLimit-Policy", "RateLimit"),
        429: _headers("RateLimit-Policy", "RateLimit", "Retry-After"),
        503: _headers("Retry-After"),
    }
}


@router.post(
    "/{policy}/{path:key}",
    response={**_DECISION, 413: ErrorOut},
    openapi_extra=_HEADERS_DOC,
    summary="Consume quota (cost 1 unless given)",
)
async def consume(
    request: HttpRequest,
    policy: str,
    key: str,
    body: ConsumeIn = _NO_BODY,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=_IDEMPOTENCY_KEY,
            description="a retried request with the same key counts once",
        ),
    ] = None,
) -> HttpResponse:
    """Spend ``cost`` units of the key's quota if they fit in every window: 200 or 429."""
    refused = _not_public(policy)
    if refused is not None:
        return refused
    try:
        # A new key is a new limiter object: it costs the client a creation (issue 16 §9).
        limiter = service.limiter_id(policy, key, public=True)
    except service.RateLimitError as exc:
        return error_response(400, "bad_request", str(exc))
    await creation.araise_if_refused(client_ip(request), limiter)
    return await _decide(
        service.consume(policy, key, body.cost, request_id=idempotency_key, public=True)
    )


@router.get(
    "/{policy}/{path:key}",
    response=_DECISION,
    openapi_extra=_HEADERS_DOC,
    summary="Peek: the decision a request would get now",
)
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
    """The decision as the contract's answer (``decision_response``: the body of
    ``DecisionOut`` or ``RateLimitedOut`` with the ratelimit headers)."""
    try:
        decision = await pending
    except service.UnknownPolicy as exc:
        return error_response(404, "not_found", str(exc))
    except service.RateLimitError as exc:
        return error_response(400, "bad_request", str(exc))
    except DurableError as exc:
        return unavailable_response(exc)
    return decision_response(decision)
