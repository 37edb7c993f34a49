"""System checks for durable_core misconfiguration (ids ``durable_core.E0xx``/``W0xx``)."""

from __future__ import annotations

import os
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.management import find_commands

from .conf import DEFAULTS, get_setting, get_storage_dir, get_var_dir
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
    return errors


@register(Tags.compatibility)
def check_project(app_configs=None, **kwargs):
    """The set-up traps of a project adopting durable_core (CONTRACT § Adopting)."""
    return [
        *_check_app_order(),
        *_check_id_key(),
        *_check_sqlite_options(),
        *_check_asgi_application(),
    ]


def _check_app_order() -> list[Error]:
    """durable_core's ``runserver`` (the one that starts the object host) must win: Django
    takes a command from the first app in INSTALLED_APPS that has it (staticfiles and
    daphne have their own)."""
    errors = []
    for config in apps.get_app_configs():
        if config.name == "durable_core":
            break
        if "runserver" in find_commands(str(Path(config.path) / "management")):
            errors.append(
                Error(
                    f"'durable_core' comes after {config.name!r} in INSTALLED_APPS, so "
                    f"{config.name}'s runserver wins and no object host starts.",
                    hint=f"Put 'durable_core' before {config.name!r} (first is simplest).",
                    id="durable_core.E010",
                )
            )
    return errors


def _check_id_key() -> list[Warning]:
    """Named objects' IDs are MACs under the ID key: a lost or changed key orphans them."""
    if get_setting("ID_KEY") or get_setting("ID_KEY_FILE"):
        return []
    return [
        Warning(
            "No ID key is configured: one is generated into "
            f"{(get_var_dir() / 'id_key').resolve()} on first use. Every named object's ID "
            "derives from it, so losing that file or moving VAR_DIR orphans them all.",
            hint="Set DURABLE_OBJECTS['ID_KEY'] (64 hex characters, e.g. from the "
            "environment variable DURABLE_ID_KEY) or 'ID_KEY_FILE', and back it up.",
            id="durable_core.W002",
        )
    ]


# The Django database options the runtime needs from SQLite: hosts write records from
# their own thread while requests write too (WAL, a busy timeout, IMMEDIATE writers).
SQLITE_OPTIONS = {
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
}


def _check_sqlite_options(database: dict | None = None) -> list[Warning]:
    if database is None:
        database = settings.DATABASES.get("default", {})
    if not str(database.get("ENGINE", "")).endswith("sqlite3"):
        return []
    options = database.get("OPTIONS", {}) or {}
    wal = "journal_mode=wal" in str(options.get("init_command", "")).lower().replace(" ", "")
    if wal and "timeout" in options and options.get("transaction_mode") == "IMMEDIATE":
        return []
    return [
        Warning(
            "The SQLite database lacks the options durable_core needs under concurrent "
            "writes (WAL, a busy timeout, IMMEDIATE transactions): expect 'database is "
            "locked' errors.",
            hint=f"Set DATABASES['default']['OPTIONS'] = {SQLITE_OPTIONS!r}.",
            id="durable_core.W003",
        )
    ]


def _check_asgi_application() -> list[Warning]:
    if getattr(settings, "ASGI_APPLICATION", None):
        return []
    return [
        Warning(
            "ASGI_APPLICATION is not set: runserver serves your project's asgi.py "
            "(or Django's default ASGI handler), with no WebSocket routes.",
            hint="Set ASGI_APPLICATION = '<project>.asgi.application' and wrap that "
            "application in durable_core.asgi.DurableLifespan for uvicorn or hypercorn.",
            id="durable_core.W004",
        )
    ]


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
