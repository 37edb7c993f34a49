"""HTTP shapes shared by the REST API, the decorator and the middleware.

Headers are the structured-field form of the IETF httpapi ratelimit-headers drafts (-08
on): ``RateLimit-Policy: "<policy>";q=<limit>;w=<period>`` and
``RateLimit: "<policy>";r=<remaining>;t=<seconds>``, plus ``Retry-After`` on 429. As the
draft says, ``w`` and ``t`` are integers (sf-integer seconds; a fractional period is
rounded up), and on a 429 ``t`` is the ``Retry-After`` value (when the next request
fits); otherwise it is when the full quota is back. Rounding up: waiting the given
seconds is always enough.
"""

from __future__ import annotations

import logging
import math

from django.http import JsonResponse

from durable_core.exceptions import DurableError, HostUnavailable, NoHostError
from durable_core.web import error_response, runtime_error_response

from .service import Decision

logger = logging.getLogger(__name__)


def _sf_string(value: str) -> str:
    """An RFC 8941 sf-string (printable ASCII; ``"`` and ``\\`` escaped)."""
    text = "".join(c if " " <= c <= "~" else "?" for c in value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _whole_seconds(value: float, minimum: int = 0) -> int:
    """Seconds as a non-negative integer, rounded up (so waiting them is enough)."""
    return max(minimum, math.ceil(value))


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The ratelimit headers of a decision (``Retry-After`` only when refused)."""
    name = _sf_string(decision.policy)
    if decision.allowed:
        until = _whole_seconds(decision.reset_after)
    else:
        until = _whole_seconds(decision.retry_after, minimum=1)
    headers = {
        "RateLimit-Policy": f"{name};q={decision.limit};w={_whole_seconds(decision.period, 1)}",
        "RateLimit": f"{name};r={decision.remaining};t={until}",
    }
    if not decision.allowed:
        headers["Retry-After"] = str(until)
    return headers


def apply_headers(response, decision: Decision):
    """Set the ratelimit headers of ``decision`` on ``response``; returns it."""
    for name, value in rate_limit_headers(decision).items():
        response[name] = value
    return response


def decision_response(decision: Decision) -> JsonResponse:
    """200 or 429 with the contract's body and headers; a 429 also carries the error
    code and message of the contract's error shape."""
    body = decision.as_body()
    if decision.allowed:
        response = JsonResponse(body)
    else:
        response = JsonResponse(
            {
                "error": "rate_limited",
                "message": f"rate limit {decision.policy!r} exceeded; "
                f"retry after {decision.retry_after:.3f} s",
                **body,
            },
            status=429,
        )
    return apply_headers(response, decision)


def is_unavailable(exc: DurableError) -> bool:
    """True when the runtime could not decide (overload, failover, no host): the
    fail-open / fail-closed setting applies. Other errors are bugs, answered 500."""
    return exc.retryable or isinstance(exc, NoHostError | HostUnavailable)


def unavailable_response(exc: DurableError) -> JsonResponse:
    """503 + Retry-After when the limiter could not decide; 500 for anything else."""
    if not is_unavailable(exc):
        return runtime_error_response(exc)
    code = "overloaded" if exc.overloaded else "unavailable"
    logger.warning("rate limiter unavailable: %s", exc)
    return error_response(
        503, code, f"rate limiter unavailable: {exc}", headers={"Retry-After": "1"}
    )
