"""System checks for the rate limiter's settings (ids ``ratelimit.E0xx``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from .service import get_policy


@register(Tags.compatibility)
def check_policies(app_configs=None, **kwargs):
    """Every RATELIMIT_POLICIES entry is usable, every middleware rule names one."""
    errors = []
    policies = getattr(settings, "RATELIMIT_POLICIES", None) or {}
    if not isinstance(policies, dict):
        return [Error("RATELIMIT_POLICIES must be a dict", id="ratelimit.E001")]
    for name in policies:
        if not isinstance(name, str) or not name or ":" in name:
            errors.append(
                Error(
                    f"Rate limit policy name {name!r} is invalid",
                    hint="Names are non-empty strings without ':'.",
                    id="ratelimit.E002",
                )
            )
            continue
        try:
            get_policy(name)
        except (ValueError, AttributeError) as exc:
            errors.append(
                Error(
                    str(exc),
                    hint='Write {"limit": <int >= 1>, "period": <seconds > 0>}.',
                    id="ratelimit.E003",
                )
            )
    for rule in getattr(settings, "RATELIMIT_MIDDLEWARE", None) or ():
        if not isinstance(rule, dict) or not {"prefix", "policy"} <= set(rule):
            errors.append(
                Error(
                    f"RATELIMIT_MIDDLEWARE rule {rule!r} needs 'prefix' and 'policy'",
                    id="ratelimit.E004",
                )
            )
        elif rule["policy"] not in policies:
            errors.append(
                Error(
                    f"RATELIMIT_MIDDLEWARE rule for {rule['prefix']!r} names the unknown "
                    f"policy {rule['policy']!r}",
                    hint="Add it to RATELIMIT_POLICIES.",
                    id="ratelimit.E005",
                )
            )
    return errors
