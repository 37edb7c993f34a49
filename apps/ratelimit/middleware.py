"""``RateLimitMiddleware``: rate limits for whole URL prefixes, configured in settings.

    MIDDLEWARE = [..., "apps.ratelimit.middleware.RateLimitMiddleware"]
    RATELIMIT_MIDDLEWARE = [
        {"prefix": "/api/demo/", "policy": "api", "key": "ip"},
        {"prefix": "/api/", "policy": "api", "key": "header:x-api-key", "methods": ["POST"]},
    ]

The first rule whose ``prefix`` starts the request path (and whose ``methods``, if
given, include the method) applies; ``key`` is as for ``@rate_limit`` (``ip``, ``user``,
``header:<name>``, or a dotted path to a callable). Responses are those of the
decorator: 429 with the ratelimit headers, headers on admitted responses, and
``RATELIMIT_FAIL_OPEN`` when the runtime is unavailable. Put it after
AuthenticationMiddleware when a rule uses ``key="user"``. Rules are read per request.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from ._http import apply_headers
from .decorators import acheck, aget_key, get_key


class RateLimitMiddleware:
    """Applies the first matching rule of ``settings.RATELIMIT_MIDDLEWARE``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        rule = _match(request)
        if rule is None:
            return self.get_response(request)
        key = get_key(request, _key_spec(rule))
        outcome = async_to_sync(acheck)(request, rule["policy"], key, rule.get("cost", 1))
        if isinstance(outcome, HttpResponse):
            return outcome
        response = self.get_response(request)
        return apply_headers(response, outcome) if outcome else response

    async def __acall__(self, request: HttpRequest) -> Any:
        rule = _match(request)
        if rule is None:
            return await self.get_response(request)
        key = await aget_key(request, _key_spec(rule))
        outcome = await acheck(request, rule["policy"], key, rule.get("cost", 1))
        if isinstance(outcome, HttpResponse):
            return outcome
        response = await self.get_response(request)
        return apply_headers(response, outcome) if outcome else response


def _match(request: HttpRequest) -> dict | None:
    for rule in getattr(settings, "RATELIMIT_MIDDLEWARE", None) or ():
        if not isinstance(rule, dict) or "prefix" not in rule or "policy" not in rule:
            raise ImproperlyConfigured(
                "RATELIMIT_MIDDLEWARE entries are dicts with 'prefix', 'policy' and 'key'"
            )
        if not request.path.startswith(rule["prefix"]):
            continue
        methods = rule.get("methods")
        if methods and request.method not in {m.upper() for m in methods}:
            continue
        return rule
    return None


def _key_spec(rule: dict) -> Any:
    spec = rule.get("key", "ip")
    if isinstance(spec, str) and "." in spec and not spec.startswith("header:"):
        return import_string(spec)
    return spec
