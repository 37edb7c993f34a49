"""Pages of the ratelimit app: the playground."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .service import get_policy


def playground(request: HttpRequest) -> HttpResponse:
    """Fire bursts at a policy and key; watch admitted and refused over time."""
    policies = []
    for name in sorted(getattr(settings, "RATELIMIT_POLICIES", {}) or {}):
        try:
            policy = get_policy(name)
        except ValueError:
            continue  # a malformed entry is reported when used, not here
        if policy is not None:
            policies.append({"name": name, "limit": policy.limit, "period": policy.period})
    return render(request, "ratelimit/playground.html", {"policies": policies})
