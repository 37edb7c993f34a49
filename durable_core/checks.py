"""System checks for durable_core misconfiguration (ids ``durable_core.E0xx``/``W0xx``)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS, get_setting, get_storage_dir
from .registry import NAMESPACE_RE, duplicates, get_registered_classes


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    """Settings that would break the runtime at its first call."""
    errors = []
    configured = getattr(settings, "DURABLE_OBJECTS", {}) or {}
    unknown = sorted(set(configured) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"Unknown DURABLE_OBJECTS settings: {', '.join(unknown)}",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="durable_core.E001",
            )
        )
    try:
        ttl = float(get_setting("LEASE_TTL"))
        idle = float(get_setting("IDLE_TIMEOUT"))
        mailbox = int(get_setting("MAILBOX_SIZE"))
    except (TypeError, ValueError) as exc:
        errors.append(
            Error(f"A DURABLE_OBJECTS number is not a number: {exc}", id="durable_core.E003")
        )
    else:
        if not 0 < ttl <= 60:
            errors.append(
                Error(
                    "DURABLE_OBJECTS['LEASE_TTL'] must be between 0 and 60 seconds.",
                    hint="Failover takes up to one TTL; the default is 5.",
                    id="durable_core.E004",
                )
            )
        if idle <= 0 or mailbox < 1:
            errors.append(
                Error(
                    "IDLE_TIMEOUT must be positive and MAILBOX_SIZE at least 1.",
                    id="durable_core.E005",
                )
            )
    if str(get_setting("SYNCHRONOUS")).upper() not in ("NORMAL", "FULL", "EXTRA"):
        errors.append(
            Error(
                "DURABLE_OBJECTS['SYNCHRONOUS'] must be NORMAL, FULL or EXTRA.",
                hint="NORMAL survives a process kill in WAL mode; FULL also power loss.",
                id="durable_core.E006",
            )
        )
    storage = get_storage_dir()
    parent = storage if storage.exists() else storage.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        errors.append(
            Error(
                f"The object storage directory {storage} is not writable.",
                hint="Set DURABLE_OBJECTS['STORAGE_DIR'] or VAR_DIR to a writable directory.",
                id="durable_core.E007",
            )
        )
    if not getattr(settings, "ASGI_APPLICATION", None):
        errors.append(
            Error(
                "ASGI_APPLICATION is not set; objects are hosted by the ASGI server process.",
                hint="Set ASGI_APPLICATION = 'config.asgi.application' (or your own).",
                id="durable_core.E008",
            )
        )
    return errors


@register(Tags.models)
def check_object_classes(app_configs=None, **kwargs):
    """Durable object classes: valid, unique and explicit namespaces."""
    messages = []
    for name, first, second in duplicates:
        messages.append(
            Error(
                f"Namespace {name!r} is claimed by both {first.__module__}.{first.__qualname__} "
                f"and {second.__module__}.{second.__qualname__}.",
                hint="Give each class its own `namespace`.",
                id="durable_core.E002",
            )
        )
    for name, cls in get_registered_classes().items():
        label = f"{cls.__module__}.{cls.__qualname__}"
        if not NAMESPACE_RE.fullmatch(name):
            messages.append(
                Error(
                    f"{label}: namespace {name!r} is not of the form 'app.Name'.",
                    id="durable_core.E009",
                )
            )
        if "namespace" not in cls.__dict__ or not cls.__dict__["namespace"]:
            messages.append(
                Warning(
                    f"{label} relies on the default namespace {name!r}.",
                    hint="Set `namespace = ...` explicitly: renaming the class or its app "
                    "would otherwise orphan every stored object.",
                    id="durable_core.W001",
                )
            )
    return messages
