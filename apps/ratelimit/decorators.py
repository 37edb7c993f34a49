"""``@rate_limit(policy, key=...)`` for Django views, sync or async.

    @rate_limit("api", key="ip")                  # the client address (TRUSTED_PROXIES aware)
    @rate_limit("api", key="user")                # the user's pk; anonymous: the address
    @rate_limit("api", key="header:x-api-key")    # a header's value; missing: the address
    @rate_limit("api", key=lambda request: ...)   # any str (None: this request is not limited)

A refused request gets 429 with the same body and headers as the REST API; an admitted
one runs the view and its response gets the ``RateLimit-Policy`` / ``RateLimit`` headers;
``request.rate_limit`` holds the Decision (None when the request was not limited). When
the limiter cannot decide (runtime unavailable), ``settings.RATELIMIT_FAIL_OPEN``
chooses: False (default) answers 503 with Retry-After, True runs the view unlimited.
A limiter that is overloaded (which a client can cause by flooding its own key) always
answers 503: overload never admits.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from durable_core.exceptions import DurableError
from durable_core.web import client_ip

from . import service
from ._http import apply_headers, decision_response, is_unavailable, unavailable_response

logger = logging.getLogger(__name__)

KeySpec = str | Callable[[HttpRequest], Any]


def rate_limit(policy: str, key: KeySpec = "ip", cost: int = 1) -> Callable:
    """Limit a view by ``policy``, per ``key`` (``ip``, ``user``, ``header:<name>`` or a
    callable of the request returning a string, or None to skip limiting)."""
    _check_key_spec(key)

    def decorator(view: Callable) -> Callable:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
                value = await aget_key(request, key)
                outcome = await acheck(request, policy, value, cost)
                if isinstance(outcome, HttpResponse):
                    return outcome
                response = await view(request, *args, **kwargs)
                return apply_headers(response, outcome) if outcome else response

            return async_wrapped

        @functools.wraps(view)
        def sync_wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
            value = get_key(request, key)
            outcome = async_to_sync(acheck)(request, policy, value, cost)
            if isinstance(outcome, HttpResponse):
                return outcome
            response = view(request, *args, **kwargs)
            return apply_headers(response, outcome) if outcome else response

        return sync_wrapped

    return decorator


async def acheck(
    request: HttpRequest, policy: str, key: str | None, cost: int = 1
) -> service.Decision | HttpResponse | None:
    """Consume for ``key``: the Decision when admitted, the 429/503 response when not,
    None when not limited (no key, or the runtime is unavailable and we fail open).
    ``request.rate_limit`` is the Decision, or None when not limited."""
    request.rate_limit = None  # type: ignore[attr-defined]
    if key is None:
        return None
    try:
        decision = await service.consume(policy, key, cost)
    except service.UnknownPolicy as exc:
        raise ImproperlyConfigured(f"rate_limit: {exc} (see RATELIMIT_POLICIES)") from exc
    except DurableError as exc:
        fail_open = getattr(settings, "RATELIMIT_FAIL_OPEN", False)
        if fail_open and is_unavailable(exc) and not service.is_busy(exc):
            logger.warning("rate limiter unavailable, failing open for %s: %s", policy, exc)
            return None
        return unavailable_response(exc)
    request.rate_limit = decision  # type: ignore[attr-defined]
    return decision if decision.allowed else decision_response(decision)


def get_key(request: HttpRequest, spec: KeySpec) -> str | None:
    """The limiter key of ``request`` for ``spec`` (sync views and middleware)."""
    if callable(spec):
        return _normalize(spec(request))
    if spec == "user":
        user = getattr(request, "user", None)
        return _user_key(user) or _ip_key(request)
    return _simple_key(request, spec)


async def aget_key(request: HttpRequest, spec: KeySpec) -> str | None:
    """``get_key`` for async code (the user is loaded with ``request.auser()``)."""
    if callable(spec):
        value = spec(request)
        if inspect.isawaitable(value):
            value = await value
        return _normalize(value)
    if spec == "user":
        user = await request.auser() if hasattr(request, "auser") else None
        return _user_key(user) or _ip_key(request)
    return _simple_key(request, spec)


def _simple_key(request: HttpRequest, spec: str) -> str:
    if spec == "ip":
        return _ip_key(request)
    name = spec.removeprefix("header:")
    value = request.headers.get(name)
    if not value:
        return _ip_key(request)
    return _normalize(f"header:{name.lower()}:{value}")  # type: ignore[return-value]


def _ip_key(request: HttpRequest) -> str:
    return f"ip:{client_ip(request)}"


def _user_key(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def _normalize(value: Any) -> str | None:
    """Keys the limiter accepts: long or unprintable values are hashed, not refused."""
    if value is None:
        return None
    value = str(value)
    if not value or len(value) > service.MAX_KEY_LENGTH or not value.isprintable():
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _check_key_spec(spec: KeySpec) -> None:
    if callable(spec) or spec in ("ip", "user"):
        return
    if isinstance(spec, str) and spec.startswith("header:") and len(spec) > len("header:"):
        return
    raise ImproperlyConfigured(
        f"rate_limit key must be 'ip', 'user', 'header:<name>' or a callable, not {spec!r}"
    )
