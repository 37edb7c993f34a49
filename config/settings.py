"""Settings of the durable-django demo project.

Everything a run keeps lives under VAR_DIR (default ``var/`` in the checkout): the
Django database, the object files, the ID key. No REDIS_URL means embedded mode.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var").resolve()
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)


def _private_file(path: Path, content: str = "") -> None:
    """Create ``path`` readable by its owner only (0600), unless it exists: secrets and
    the database are never world-readable, whatever the umask (issue 16 §11)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:  # made by an older checkout: tighten it
            with contextlib.suppress(PermissionError):
                os.chmod(path, 0o600)
        return
    with os.fdopen(fd, "w") as file:
        file.write(content)


def _secret_key() -> str:
    """A per-checkout key kept in VAR_DIR (never used for object IDs)."""
    if os.environ.get("DJANGO_SECRET_KEY"):
        return os.environ["DJANGO_SECRET_KEY"]
    path = VAR_DIR / "secret_key"
    _private_file(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Off unless asked for (DJANGO_DEBUG=1): pages keep their styles without it, since
# config/asgi.py serves the static files.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "durable_core",  # before daphne: its runserver also starts the object host
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",  # serves the OpenAPI UI's assets locally (no CDN)
    "apps.chat",
    "apps.collab_doc",
    "apps.ratelimit",
    "apps.iot",
    "config",  # the demo's own pages and its demo.Counter object
]

MIDDLEWARE = [
    "durable_core.web.api_json_errors",  # outermost: no HTML error page under /api/
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The demo login admin/admin works from this machine only (config/auth.py).
AUTHENTICATION_BACKENDS = [
    "config.auth.LocalDemoLoginGuard",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# An empty file is a new SQLite database: made here so that it is created 0600 (SQLite
# gives its -wal and -shm files the database file's permissions).
_private_file(VAR_DIR / "db.sqlite3")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "db.sqlite3",
        # WAL + a busy timeout: hosts and web requests write records concurrently.
        "OPTIONS": {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        },
    }
}

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("DURABLE_REDIS_URL") or None

DURABLE_OBJECTS = {
    "STORAGE_DIR": str(VAR_DIR / "objects"),
    # Named objects' IDs derive from this key: back it up with the objects (or set ID_KEY).
    "ID_KEY_FILE": str(VAR_DIR / "id_key"),
    "REDIS_URL": REDIS_URL,
}

CHANNEL_LAYERS = {
    "default": (
        # socket_timeout None: redis-py 8 times reads out at 5 s, channels-redis blocks
        # 5 s in BZPOPMIN, and an idle receiver would reconnect every 5 s.
        {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]},
        }
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}
if REDIS_URL:
    # The other channels-redis layer, for DURABLE_TRANSPORT=channels:pubsub (benchmarks).
    CHANNEL_LAYERS["pubsub"] = {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "durable_core": {"handlers": ["console"], "level": os.environ.get("DURABLE_LOG", "INFO")},
        # The development server's access log (HTTP and WebSocket lines), whatever DEBUG
        # says: Django's default console handler prints only with DEBUG on.
        "django.channels.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Proxies whose X-Forwarded-For is believed for client addresses (comma-separated
# addresses or networks in the TRUSTED_PROXIES environment variable); none by default.
TRUSTED_PROXIES = [p for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()]


def _rate_from_env(variable: str, default: str) -> dict | None:
    """A server-only policy from ``<variable>=<limit>/<seconds>``; "0" disables it.
    Not public: only server code spends it (by client IP), never the REST API."""
    raw = os.environ.get(variable, default).strip()
    if raw == "0":
        return None
    limit, _, period = raw.partition("/")
    return {
        "limit": int(limit),
        "period": float(period or default.partition("/")[2]),
        "public": False,
    }


def _chat_rate_limit() -> dict | None:
    """CHAT_RATE_LIMIT=<limit>/<seconds> overrides the chat policy; "0" disables it."""
    return _rate_from_env("CHAT_RATE_LIMIT", "30/10")


# Rate limiter policies (CONTRACT § Rate limiter): name -> limit per period seconds.
RATELIMIT_POLICIES = {
    "demo": {"limit": 10, "period": 10},
    "api": {"limit": 100, "period": 60},
}
_CHAT_POLICY = _chat_rate_limit()
if _CHAT_POLICY is not None:
    RATELIMIT_POLICIES["chat"] = _CHAT_POLICY
    # Reads with large answers (hello's backlog or resume, history pages), per client IP:
    # CHAT_READ_RATE_LIMIT=<limit>/<seconds> (default 60/60); CHAT_RATE_LIMIT=0 disables both.
    _read_limit, _, _read_period = os.environ.get("CHAT_READ_RATE_LIMIT", "60/60").partition("/")
    RATELIMIT_POLICIES["chat_read"] = {
        "limit": int(_read_limit),
        "period": float(_read_period or 60),
        "public": False,
    }
# New objects (devices, documents, rate-limit keys, sockets on new names) one client may
# create through the public APIs: CREATE_RATE_LIMIT=<n>/<seconds>, "0" disables it
# (issue 16 §9; apps/ratelimit/creation.py). Generous: a person never meets it.
_CREATE_POLICY = _rate_from_env("CREATE_RATE_LIMIT", "300/60")
if _CREATE_POLICY is not None:
    RATELIMIT_POLICIES["create"] = _CREATE_POLICY
# RATELIMIT_POLICIES_JSON='{"t": {"limit": 20, "period": 2}}' adds or replaces policies
# for one server process (tests, benchmarks).
if os.environ.get("RATELIMIT_POLICIES_JSON"):
    import json as _json

    RATELIMIT_POLICIES.update(_json.loads(os.environ["RATELIMIT_POLICIES_JSON"]))
# Runtime unavailable (no host, failover in progress): False answers 503 (fail closed),
# True lets the request through unlimited (fail open). Env RATELIMIT_FAIL_OPEN=1.
RATELIMIT_FAIL_OPEN = os.environ.get("RATELIMIT_FAIL_OPEN", "0").lower() in ("1", "true", "yes")
# Whole URL prefixes limited by apps.ratelimit.middleware.RateLimitMiddleware (when it
# is in MIDDLEWARE): [{"prefix": "/api/demo/", "policy": "api", "key": "ip"}, ...].
RATELIMIT_MIDDLEWARE: list[dict] = []

# Device twins (apps/iot). Seconds without a heartbeat after which a device is reported
# offline; telemetry kept per device: at most this many values, none older than this many
# seconds. Each is overridden by the environment variable of the same name.
IOT_HEARTBEAT_TIMEOUT = float(os.environ.get("IOT_HEARTBEAT_TIMEOUT", "30"))
IOT_TELEMETRY_MAX_POINTS = int(os.environ.get("IOT_TELEMETRY_MAX_POINTS", "10000"))
IOT_TELEMETRY_MAX_AGE = float(os.environ.get("IOT_TELEMETRY_MAX_AGE", str(7 * 24 * 3600)))
