"""Overload of a limiter never admits (issue 16 §4): one client sending more at once than
the limiter's mailbox holds gets refusals (429/503), never more than the limit, through
every path that spends quota (the chat's send check, ``@rate_limit``, the middleware),
even with ``RATELIMIT_FAIL_OPEN``. Real embedded runtime with a mailbox of 2."""

from __future__ import annotations

import asyncio

import pytest

from apps.chat import limits as chat_limits
from apps.ratelimit import service
from durable_core.testing import object_host
from tests.ratelimit.test_django import ClientAt

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.ratelimit.urls"),
    pytest.mark.timeout(60),
]

LIMIT = 3
CONCURRENT = 60


@pytest.fixture(autouse=True)
def swamped(settings, monkeypatch):
    """Policies of LIMIT per minute; a full mailbox reaches the caller at once."""
    settings.RATELIMIT_POLICIES = {
        "t3": {"limit": LIMIT, "period": 60},
        "chat": {"limit": LIMIT, "period": 60, "public": False},
    }
    settings.RATELIMIT_FAIL_OPEN = True  # the setting must not open the door to a flood
    settings.RATELIMIT_MIDDLEWARE = [{"prefix": "/mw/", "policy": "t3", "key": "ip"}]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "apps.ratelimit.middleware.RateLimitMiddleware"]
    monkeypatch.setattr(service, "OVERLOAD_RETRY_SECONDS", 0.0)


async def test_chat_sends_beyond_the_limiters_mailbox_are_refused_not_admitted(tmp_path):
    async with object_host(tmp_path / "o", MAILBOX_SIZE=2):
        results = await asyncio.gather(
            *(chat_limits.check_send("203.0.113.7") for _ in range(CONCURRENT))
        )
    admitted = [r for r in results if r is None]
    busy = [r for r in results if r is not None and r.status == 503]
    assert len(admitted) <= LIMIT, f"{len(admitted)} sends admitted, limit {LIMIT}"
    assert busy, "the limiter was never overloaded: the test proves nothing"
    assert all(r.retry_after > 0 for r in busy)


@pytest.mark.parametrize("path", ["/ip", "/mw/a"])
async def test_decorator_and_middleware_answer_503_when_the_limiter_is_overloaded(tmp_path, path):
    async with object_host(tmp_path / "o", MAILBOX_SIZE=2):
        client = ClientAt("203.0.113.8")
        responses = await asyncio.gather(*(client.get(path) for _ in range(CONCURRENT)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) <= LIMIT, statuses
    assert 503 in statuses, "the limiter was never overloaded: the test proves nothing"
    assert set(statuses) <= {200, 429, 503}
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.json()["error"] == "overloaded" and refused["Retry-After"]
