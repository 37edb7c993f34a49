"""The rate limiter's public Python API: policies, ``consume`` and ``peek``.

    from apps.ratelimit.service import consume

    decision = await consume("api", client_ip(request))
    if not decision.allowed:
        ...  # 429, Retry-After: decision.retry_after

Policies come from ``settings.RATELIMIT_POLICIES`` (``{"api": {"limit": 100, "period":
60}}``), read at every call. Each (policy, key) is one ``ratelimit.Limiter`` durable
object (``apps/ratelimit/objects.py``), so every decision for a key is made in one place,
serially, across all processes: in every window of ``period`` seconds the admitted cost
is at most ``limit``.

Two key spaces (issue 16 §5). Keys that server code spends (``@rate_limit``, the
middleware, chat, any ``consume`` call) name objects ``"<policy>#<HMAC of the key>"``;
keys of the public REST API (``public=True``) name objects ``"<policy>:<key>"``. Policy
names hold no ``:``, so the two never meet: nobody can spend a client's quota (``ip:…``,
``user:…``, ``header:…``) over REST, whatever the policy's flags, and no client address
or API key is ever stored as an object name (the admin shows the HMAC only).
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import salted_hmac

from durable_core.exceptions import CallTimeout, DurableError, ObjectOverloaded
from durable_core.ids import ObjectId
from durable_core.registry import get_namespace

NAMESPACE = "ratelimit.Limiter"
MAX_KEY_LENGTH = 256
# A full mailbox (hundreds of callers on one key) is retried this long before the
# caller sees ObjectOverloaded (a 503); the pauses grow from 10 ms to 200 ms.
OVERLOAD_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class Policy:
    """A named limit: at most ``limit`` cost units in every window of ``period`` seconds."""

    name: str
    limit: int
    period: float
    # False: only server code (decorators, middleware, other apps) may spend it; the
    # public REST API answers 404, so nobody can drain another client's quota.
    public: bool = True


@dataclass(frozen=True)
class Decision:
    """One answer of the limiter; times are seconds, ``at`` the server's decision time."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    policy: str
    period: float
    at: float  # server decision time (epoch seconds, the owner's clock)

    def as_body(self) -> dict:
        """The REST body: the contract's fields plus ``at``, the decision time, so that
        clients can check the guarantee against the server's own clock."""
        return {
            "allowed": self.allowed,
            "limit": self.limit,
            "remaining": self.remaining,
            "reset_after": self.reset_after,
            "retry_after": self.retry_after,
            "at": self.at,
        }


class RateLimitError(ValueError):
    """Raised for a bad argument to the limiter; a retry with the same input cannot help."""


class UnknownPolicy(LookupError):
    """Raised when no policy of that name is configured in RATELIMIT_POLICIES."""


class InvalidKey(RateLimitError):
    """Raised when a key is not 1 to 256 printable characters."""


class InvalidCost(RateLimitError):
    """Raised when a cost is not an integer between 1 and the policy's limit."""


def get_policy(name: str) -> Policy | None:
    """The policy ``name`` from ``settings.RATELIMIT_POLICIES``, or None.

    Read at call time, so ``override_settings`` and per-process environments apply.
    Raises ValueError when the configured entry itself is malformed.
    """
    if not isinstance(name, str) or ":" in name:
        return None
    config = (getattr(settings, "RATELIMIT_POLICIES", None) or {}).get(name)
    if config is None:
        return None
    limit, period = config.get("limit"), config.get("period")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"RATELIMIT_POLICIES[{name!r}]['limit'] must be an integer >= 1")
    if isinstance(period, bool) or not isinstance(period, int | float) or not period > 0:
        raise ValueError(f"RATELIMIT_POLICIES[{name!r}]['period'] must be seconds > 0")
    if not math.isfinite(period):
        raise ValueError(f"RATELIMIT_POLICIES[{name!r}]['period'] must be finite")
    public = config.get("public", True)
    if not isinstance(public, bool):
        raise ValueError(f"RATELIMIT_POLICIES[{name!r}]['public'] must be true or false")
    return Policy(name, limit, float(period), public)


_RATE_RE = re.compile(r"(\d+)/(\d*)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, float]:
    """``"5/m"`` (django-ratelimit's notation: ``s``, ``m``, ``h``, ``d``, optionally a
    multiple such as ``"100/15m"``) as (limit, period seconds); raises ValueError."""
    match = _RATE_RE.fullmatch(rate.strip()) if isinstance(rate, str) else None
    if match is None or int(match[1]) < 1 or match[2] == "0":
        raise ValueError(f"rate {rate!r} is not of the form '<n>/<unit>', e.g. '5/m'")
    return int(match[1]), float(int(match[2] or 1) * _UNIT_SECONDS[match[3]])


def inline_policy(name: str, rate: str) -> Policy:
    """A policy given in code (``@rate_limit(rate="5/m")``) rather than in settings; never
    public (the REST API only serves policies named in RATELIMIT_POLICIES)."""
    if ":" in name or "#" in name:
        raise ValueError(f"policy name {name!r} may not hold ':' or '#'")
    limit, period = parse_rate(rate)
    return Policy(name, limit, period, public=False)


def validate_key(key: object) -> str:
    """``key`` if it is 1 to 256 printable characters; raises InvalidKey."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidKey(f"a key is 1 to {MAX_KEY_LENGTH} printable characters")
    return key


def _resolve(policy: str | Policy, key: str) -> Policy:
    found = policy if isinstance(policy, Policy) else get_policy(policy)
    if found is None:
        raise UnknownPolicy(f"no rate limit policy named {policy!r}")
    validate_key(key)
    return found


def object_name(policy: str, key: str, *, public: bool = False) -> str:
    """The limiter object's name for ``key`` under ``policy`` (see the module docstring:
    server keys are an HMAC keyed by ``SECRET_KEY``, public REST keys stay readable)."""
    if public:
        return f"{policy}:{key}"
    digest = salted_hmac("apps.ratelimit.key", key, algorithm="sha256").hexdigest()
    return f"{policy}#{digest}"


def limiter_id(policy: str, key: str, *, public: bool = False) -> ObjectId:
    """The object ID of ``key``'s limiter under ``policy``; raises InvalidKey."""
    return get_namespace(NAMESPACE).id_from_name(
        object_name(policy, validate_key(key), public=public)
    )


def _stub(policy: Policy, key: str, public: bool):
    return get_namespace(NAMESPACE).get_by_name(object_name(policy.name, key, public=public))


async def consume(
    policy: str | Policy,
    key: str,
    cost: int = 1,
    *,
    request_id: str | None = None,
    public: bool = False,
) -> Decision:
    """Spend ``cost`` units of ``key``'s quota under ``policy`` if they fit.

    ``request_id`` (optional, e.g. an Idempotency-Key) makes a retried request count
    once: it is the call id, and the limiter answers a repeated id with the first
    decision (within the runtime's call-id window: the last 1,000 calls, 10 minutes).
    ``public`` selects the public REST API's key space (only that API passes it).

    Raises UnknownPolicy, InvalidKey, InvalidCost; runtime errors (``DurableError``,
    ``ObjectOverloaded`` after a short retry) when the limiter cannot be reached.
    """
    found = _resolve(policy, key)
    if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= found.limit:
        raise InvalidCost(f"cost must be an integer from 1 to {found.limit}")
    raw = await _call(
        _stub(found, key, public), "consume", found.limit, found.period, cost, call_id=request_id
    )
    return _decision(found, raw)


async def peek(policy: str | Policy, key: str, *, public: bool = False) -> Decision:
    """The decision a request of cost 1 would get now, consuming nothing."""
    found = _resolve(policy, key)
    raw = await _call(_stub(found, key, public), "peek", found.limit, found.period)
    return _decision(found, raw)


async def _call(stub, method: str, *args: object, call_id: str | None = None) -> dict:
    """Call the limiter; a full mailbox is retried briefly (the call provably did not
    start, so a retry cannot count twice) before ObjectOverloaded reaches the caller."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OVERLOAD_RETRY_SECONDS
    pause = 0.01
    while True:
        try:
            return await stub.call(method, *args, call_id=call_id)
        except ObjectOverloaded:
            if loop.time() + pause > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)


def is_busy(exc: DurableError) -> bool:
    """True when the limiter failed because it is swamped (a full mailbox, a call that
    timed out waiting): the caller's own flood can cause that, so such a failure must
    refuse, never admit, whatever a fail-open setting says (issue 16 §4)."""
    return exc.overloaded or isinstance(exc, CallTimeout)


def _decision(policy: Policy, raw: dict) -> Decision:
    return Decision(
        allowed=bool(raw["allowed"]),
        limit=int(raw["limit"]),
        remaining=int(raw["remaining"]),
        reset_after=float(raw["reset_after"]),
        retry_after=float(raw["retry_after"]),
        policy=policy.name,
        period=float(raw["period"]),
        at=float(raw["at"]),
    )
