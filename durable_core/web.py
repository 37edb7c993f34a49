"""HTTP helpers shared by the REST APIs of the runtime and the apps.

Every error answer is JSON ``{"error": code, "message": text, ...}`` (CONTRACT): the
handlers installed by ``install_error_handlers`` turn validation failures, unparsable
bodies, unknown routes and runtime errors into that shape, never into an HTML page.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from .exceptions import DurableError, RemoteObjectError

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
}


class ApiError(Exception):
    """An answer with a status, an error code, a message and extra body fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    """The JSON error body of the contract."""
    response = JsonResponse({"error": code, "message": message, **extra}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def runtime_error_response(exc: DurableError) -> JsonResponse:
    """503 + Retry-After for retryable runtime errors (overload, failover), else 500."""
    if exc.retryable:
        retry = getattr(exc, "retry_after", None) or 1
        return error_response(
            503,
            "overloaded" if exc.overloaded else "unavailable",
            str(exc),
            headers={"Retry-After": str(max(1, math.ceil(retry)))},
        )
    if isinstance(exc, RemoteObjectError):
        logger.error("object error: %s", exc)
    return error_response(500, "object_error", str(exc))


def install_error_handlers(api: Any) -> None:
    """Make a NinjaAPI answer every failure in the contract's JSON error shape."""
    from ninja.errors import HttpError, ValidationError

    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        problems = []
        for error in exc.errors:
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return error_response(400, "bad_request", "; ".join(problems) or "invalid input")

    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), str(exc))

    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, **exc.extra)

    def not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
        return error_response(404, "not_found", str(exc) or "not found")

    def durable_error(request: HttpRequest, exc: DurableError) -> HttpResponse:
        return runtime_error_response(exc)

    def too_big(request: HttpRequest, exc: Exception) -> HttpResponse:
        return error_response(413, "too_large", "request body too large")

    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        if isinstance(exc, RecursionError):  # json.loads of absurdly nested input
            return error_response(400, "bad_request", "JSON nested too deeply")
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")

    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(ApiError, api_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(DurableError, durable_error)
    api.add_exception_handler(RequestDataTooBig, too_big)
    api.add_exception_handler(Exception, unexpected)


def client_ip(request: HttpRequest) -> str:
    """The client address: ``REMOTE_ADDR``, or the nearest untrusted hop of
    ``X-Forwarded-For`` when the direct peer is one of ``TRUSTED_PROXIES``."""
    return resolve_client(
        request.META.get("REMOTE_ADDR") or "unknown",
        request.META.get("HTTP_X_FORWARDED_FOR", ""),
    )


def scope_client_ip(scope: dict) -> str:
    """``client_ip`` for an ASGI scope (WebSocket consumers)."""
    client = scope.get("client") or ("unknown", 0)
    forwarded = b""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-forwarded-for":
            forwarded = value
    return resolve_client(str(client[0]), forwarded.decode("latin1"))


def resolve_client(remote: str, forwarded: str) -> str:
    """The one rule for client addresses (HTTP and WebSocket, issue 16 §12): the direct
    peer unless it is a trusted proxy; then the nearest ``X-Forwarded-For`` hop that is not
    one; when every hop is trusted, the farthest hop (the earliest address the chain
    vouches for)."""
    trusted = _trusted_proxies()
    if not trusted or not _in(remote, trusted):
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else remote


def _trusted_proxies() -> list:
    """``TRUSTED_PROXIES`` as networks. Host bits are allowed (``10.0.0.1/24`` is
    10.0.0.0/24); an entry that is no address or network is skipped with a warning, never
    an exception in the middle of a request or a WebSocket connect."""
    networks = []
    for entry in getattr(settings, "TRUSTED_PROXIES", ()) or ():
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            logger.warning("TRUSTED_PROXIES: %r is not an address or network; ignored", entry)
    return networks


def _in(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def as_json_error(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """``response`` itself unless it is a non-JSON error answer (a 405 from a route's method
    check, a CSRF refusal, Django's own 404/500 pages); then the contract's JSON error with
    its status and headers such as ``Allow``."""
    if response.status_code < 400 or response.get("Content-Type", "").startswith(
        "application/json"
    ):
        return response
    status = response.status_code
    message = {
        405: f"{request.method} is not allowed here (allowed: {response.get('Allow', '')})",
        403: "forbidden (a staff API needs a session login and the CSRF token)",
    }.get(status, f"{_CODES.get(status, 'error').replace('_', ' ')}")
    converted = error_response(status, _CODES.get(status, "error"), message)
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            converted[header] = response[header]
    return converted


def json_errors(view: Any) -> Any:
    """Decorator: a view (sync or async) whose error answers are all JSON (``as_json_error``);
    ``durable_core.urls`` wraps its API with it, since a project adopting durable_core does
    not have the demo's ``api_json_errors`` middleware."""
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction

    if iscoroutinefunction(view):

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return as_json_error(request, await view(request, *args, **kwargs))

        return functools.wraps(view)(markcoroutinefunction(async_view))

    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return as_json_error(request, view(request, *args, **kwargs))

    return functools.wraps(view)(sync_view)


def api_json_errors(get_response: Any) -> Any:
    """Middleware: every error answer under ``/api/`` is the contract's JSON error
    (``as_json_error``)."""
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction

    def convert(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return response
        return as_json_error(request, response)

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            return convert(request, await get_response(request))

        return markcoroutinefunction(middleware)

    def sync_middleware(request: HttpRequest) -> HttpResponse:
        return convert(request, get_response(request))

    return sync_middleware


api_json_errors.sync_capable = True
api_json_errors.async_capable = True
