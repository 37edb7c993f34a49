"""Views for the decorator and middleware tests (ROOT_URLCONF of tests/ratelimit/test_django.py)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from apps.ratelimit.decorators import rate_limit
from config.api import api


@rate_limit("t3", key="ip")
async def by_ip(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "remaining": getattr(request.rate_limit, "remaining", None)})


@rate_limit("t3", key="header:x-api-key")
def by_header_sync(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "remaining": getattr(request.rate_limit, "remaining", None)})


@rate_limit("t3", key="user")
async def by_user(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@rate_limit("t3", key="user")
def by_user_sync(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@rate_limit("t3", key=lambda request: request.GET.get("tenant"), cost=2)
async def by_callable(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


async def plain(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def plain_sync(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


# django-ratelimit's options: an inline rate, a method filter, annotate-only.
@csrf_exempt
@rate_limit(rate="2/m", key="ip", method="POST")
async def inline_post_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "limited": request.limited})


@rate_limit(rate="1/h", key="ip", block=False, group="tests.annotate")
def annotate_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "limited": request.limited})


urlpatterns = [
    path("ip", by_ip),
    path("header", by_header_sync),
    path("user", by_user),
    path("user-sync", by_user_sync),
    path("tenant", by_callable),
    path("mw/a", plain),
    path("mw/sync", plain_sync),
    path("free", plain),
    path("inline", inline_post_only),
    path("annotate", annotate_only),
    path("api/", api.urls),  # the public REST API beside the decorated views
]
