"""``@rate_limit(policy, key=...)`` for Django views, sync or async.

    @rate_limit("api", key="ip")                  # the client address (TRUSTED_PROXIES aware)
    @rate_limit("api", key="user")                # the user's pk; anonymous: the address
    @rate_limit("api", key="header:x-api-key")    # a header's value; missing: the address
    @rate_limit("api", key=lambda request: ...)   # any str (None: this request is not limited)

django-ratelimit's options work too: ``rate="5/m"`` gives the limit inline instead of a
policy from settings (its name is ``group=``, by default the view's dotted path);
``method="POST"`` (or a list, or ``UNSAFE``) limits only those methods; ``block=False``
only annotates: the view always runs, with ``request.limited`` True when the request was
over the limit (and the RateLimit headers on its response).

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


ALL = None  # every method (the default)
UNSAFE = ("DELETE", "PATCH", "POST", "PUT")


def rate_limit(
    policy: str | None = None,
    key: KeySpec = "ip",
    cost: int = 1,
    *,
    rate: str | None = None,
    group: str | None = None,
    method: str | tuple[str, ...] | list[str] | None = ALL,
    block: bool = True,
) -> Callable:
    """Limit a view by ``policy`` (a name in ``RATELIMIT_POLICIES``) or by ``rate``
    (``"5/m"``), per ``key`` (``ip``, ``user``, ``header:<name>`` or a callable of the
    request returning a string, or None to skip limiting); see the module docstring."""
    _check_key_spec(key)
    if (policy is None) == (rate is None):
        raise ImproperlyConfigured("rate_limit: give a policy name or rate=, not both")
    methods = None if method is ALL else {m.upper() for m in _as_tuple(method)}

    def decorator(view: Callable) -> Callable:
        try:
            limit: str | service.Policy = policy or service.inline_policy(
                group or f"{view.__module__}.{view.__qualname__}",
                rate,  # type: ignore[arg-type]
            )
        except ValueError as exc:
            raise ImproperlyConfigured(f"rate_limit: {exc}") from exc

        def applies(request: HttpRequest) -> bool:
            if methods is None or request.method in methods:
                return True
            request.rate_limit = None  # type: ignore[attr-defined]
            request.limited = False  # type: ignore[attr-defined]
            return False

        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
                if not applies(request):
                    return await view(request, *args, **kwargs)
                value = await aget_key(request, key)
                outcome = await acheck(request, limit, value, cost, block=block)
                if isinstance(outcome, HttpResponse):
                    return outcome
                response = await view(request, *args, **kwargs)
                return _annotate(response, outcome)

            return async_wrapped

        @functools.wraps(view)
        def sync_wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
            if not applies(request):
                return view(request, *args, **kwargs)
            value = get_key(request, key)
            outcome = async_to_sync(acheck)(request, limit, value, cost, block=block)
            if isinstance(outcome, HttpResponse):
                return outcome
            response = view(request, *args, **kwargs)
            return _annotate(response, outcome)

        return sync_wrapped

    return decorator


def _as_tuple(method: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return (method,) if isinstance(method, str) else tuple(method)


def _annotate(response: HttpResponse, decision: service.Decision | None) -> HttpResponse:
    """The view's response with the decision's headers; no Retry-After on a response that
    was not refused (``block=False`` lets an over-limit request through)."""
    if decision is None:
        return response
    apply_headers(response, decision)
    if "Retry-After" in response and response.status_code != 429:
        del response["Retry-After"]
    return response


async def acheck(
    request: HttpRequest,
    policy: str | service.Policy,
    key: str | None,
    cost: int = 1,
    *,
    block: bool = True,
) -> service.Decision | HttpResponse | None:
    """Consume for ``key``: the Decision when admitted (or when refused with ``block``
    False), the 429/503 response when refused, None when not limited (no key, or the
    runtime is unavailable and we fail open). ``request.rate_limit`` is the Decision, or
    None when not limited; ``request.limited`` says whether the request was over."""
    request.rate_limit = None  # type: ignore[attr-defined]
    request.limited = False  # type: ignore[attr-defined]
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
    request.limited = not decision.allowed  # type: ignore[attr-defined]
    if decision.allowed or not block:
        return decision
    return decision_response(decision)


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
