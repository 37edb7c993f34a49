"""Settings of durable_core: one ``DURABLE_OBJECTS`` dict, each key overridable by env.

``DURABLE_OBJECTS = {"REDIS_URL": ..., "LEASE_TTL": 5}``; the environment variable
``DURABLE_<NAME>`` wins over the dict, so a process can be pointed elsewhere without
editing settings. No ``REDIS_URL`` means embedded mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Coordination: no Redis URL means embedded mode (one process, in-process leases).
    "REDIS_URL": None,
    "KEY_PREFIX": "durable",
    # Redis connections per process; a command waits for a free one (up to 10 s) rather
    # than failing when a burst (a thousand sockets connecting) needs more.
    "REDIS_MAX_CONNECTIONS": 128,
    # Where per-object SQLite files live; default VAR_DIR/objects.
    "STORAGE_DIR": None,
    # File holding the ID MAC key; default VAR_DIR/id_key. "ID_KEY" (hex) wins if set.
    "ID_KEY": None,
    "ID_KEY_FILE": None,
    # Seconds a lease lasts without renewal (renewed every TTL/3).
    "LEASE_TTL": 5.0,
    # Seconds without events after which an active object is evicted.
    "IDLE_TIMEOUT": 60.0,
    # Queued events per object before calls fail with ObjectOverloaded.
    "MAILBOX_SIZE": 1000,
    # Seconds one turn may run before it is rolled back and the object reset.
    "TURN_TIMEOUT": 30.0,
    # Seconds a caller waits for a reply, retries included.
    "CALL_TIMEOUT": 30.0,
    # Turns committed together in one SQLite transaction at most (group commit).
    "MAX_BATCH": 128,
    # SQLite synchronous level. NORMAL in WAL mode survives a kill of the process (the
    # committed frames are in the OS page cache); FULL also survives power loss.
    "SYNCHRONOUS": "NORMAL",
    # Largest object database, bytes.
    "MAX_DATABASE_SIZE": 1024 * 1024 * 1024,
    # Open SQLite stores kept per host (least recently used closed first).
    "MAX_OPEN_STORES": 512,
    # Seconds the record of a deleted object is kept before the hosts' housekeeping
    # purges it (its fence floor stays, folded into its namespace's); 0 never purges.
    "DELETED_RECORD_RETENTION": 86400.0,
    # Active objects kept per host: beyond it the least recently used idle ones are
    # evicted (their state is in storage; the next call activates them again).
    "MAX_ACTIVE_OBJECTS": 50_000,
    # Milliseconds one user SQL statement may run.
    "SQL_TIME_LIMIT_MS": 5000,
    # Completed call ids remembered per object for retries: count and seconds.
    "CALL_ID_WINDOW": 1000,
    "CALL_ID_SECONDS": 600.0,
    # Seconds between alarm index polls.
    "ALARM_POLL_INTERVAL": 1.0,
    # Cluster mode: how calls travel between processes ("redis-pubsub" or "channels").
    "TRANSPORT": "redis-pubsub",
    # Seconds between host heartbeats; a host is dead after three missed ones.
    "HEARTBEAT_INTERVAL": 1.0,
    # Hot-object detection (hot.py): per-host top objects in the heartbeat; False off.
    "HOT_OBJECTS": True,
    # /metrics answers anyone; False restricts it to staff sessions.
    "METRICS_PUBLIC": True,
    # Embedded mode takes an exclusive lock on STORAGE_DIR; only tests turn this off.
    "LOCK_STORAGE_DIR": True,
}

_CASTS = {bool: lambda v: str(v).lower() in ("1", "true", "yes", "on"), int: int, float: float}


def get_var_dir() -> Path:
    """The directory holding all state of a run: the ``VAR_DIR`` setting, else the
    environment variable, else ``var/`` beside the project (``BASE_DIR``, as
    ``startproject`` defines it), so it does not move with the working directory."""
    configured = getattr(settings, "VAR_DIR", None) or os.environ.get("VAR_DIR")
    if configured:
        return Path(configured)
    base = getattr(settings, "BASE_DIR", None)
    return Path(base) / "var" if base else Path("var").resolve()


def get_setting(name: str) -> Any:
    """One durable_core setting: env ``DURABLE_<NAME>``, then ``DURABLE_OBJECTS``, then default."""
    default = DEFAULTS[name]
    env = os.environ.get(f"DURABLE_{name}")
    if env is not None:
        if env == "" and default is None:
            return None
        cast = _CASTS.get(type(default), str)
        return cast(env)
    configured = getattr(settings, "DURABLE_OBJECTS", {}) or {}
    return configured.get(name, default)


def get_storage_dir() -> Path:
    """Directory of the per-object SQLite files."""
    return Path(get_setting("STORAGE_DIR") or get_var_dir() / "objects")


def is_cluster_mode() -> bool:
    """True when a Redis URL is configured."""
    return bool(get_setting("REDIS_URL"))
