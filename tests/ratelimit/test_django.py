"""``@rate_limit`` and ``RateLimitMiddleware`` in-process, on the real embedded runtime."""

from __future__ import annotations

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client

from apps.ratelimit.decorators import rate_limit
from durable_core.testing import object_host
from tests.ratelimit._checks import parse_list

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.ratelimit.urls"),
]

POLICIES = {"t3": {"limit": 3, "period": 30}}
MIDDLEWARE_RULES = [
    {"prefix": "/mw/", "policy": "t3", "key": "ip", "methods": ["GET"]},
]


@pytest.fixture(autouse=True)
def policies(settings):
    settings.RATELIMIT_POLICIES = POLICIES
    settings.RATELIMIT_FAIL_OPEN = False
    settings.RATELIMIT_MIDDLEWARE = MIDDLEWARE_RULES
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "apps.ratelimit.middleware.RateLimitMiddleware"]


class ClientAt(AsyncClient):
    """An AsyncClient whose requests come from ``address`` (the ASGI scope's client), each
    in its own ThreadSensitiveContext as Django's ASGIHandler (Daphne) runs requests: a
    sync view then gets its own thread (see tests/core/test_sync_callers.py for why it matters)."""

    def __init__(self, address: str = "127.0.0.1", **kwargs) -> None:
        super().__init__(**kwargs)
        self.address = address

    def _base_scope(self, **request):
        scope = super()._base_scope(**request)
        scope["client"] = [self.address, 0]
        return scope

    async def request(self, **request):
        async with ThreadSensitiveContext():
            return await super().request(**request)


async def statuses(client, path, n, **extra):
    return [(await client.get(path, **extra)).status_code for _ in range(n)]


async def test_decorated_async_view_limits_by_ip_with_headers(tmp_path):
    async with object_host(tmp_path / "o"):
        client = ClientAt("10.0.0.1")
        response = await client.get("/ip")
        assert response.status_code == 200 and response.json()["remaining"] == 2
        assert parse_list(response["RateLimit-Policy"]) == [("t3", {"q": 3, "w": 30})]
        assert parse_list(response["RateLimit"])[0][1]["r"] == 2
        assert await statuses(client, "/ip", 3) == [200, 200, 429]
        refused = await client.get("/ip")
        body = refused.json()
        assert body["error"] == "rate_limited" and body["allowed"] is False
        assert int(refused["Retry-After"]) >= 29 and "RateLimit" in refused
        # Another address has its own quota.
        assert (await ClientAt("10.0.0.2").get("/ip")).status_code == 200


async def test_decorated_sync_view_limits_by_header_falling_back_to_ip(tmp_path):
    async with object_host(tmp_path / "o"):
        client = ClientAt("10.0.0.3")
        alpha = {"x-api-key": "alpha"}
        assert await statuses(client, "/header", 4, headers=alpha) == [200] * 3 + [429]
        assert await statuses(client, "/header", 1, headers={"x-api-key": "beta"}) == [200]
        assert await statuses(client, "/header", 4) == [200] * 3 + [429]  # keyed by address
        # Huge or unprintable header values are hashed into a valid key, not refused.
        assert await statuses(client, "/header", 1, headers={"x-api-key": "z" * 5000}) == [200]


async def test_user_key_separates_users_and_anonymous_falls_back_to_ip(tmp_path):
    ann = await User.objects.acreate_user("ann", password="x")
    async with object_host(tmp_path / "o"):
        client = ClientAt("10.0.0.4")
        await client.aforce_login(ann)
        assert await statuses(client, "/user", 4) == [200] * 3 + [429]
        # The sync view shares the policy and the key (user:<pk>): already used up.
        assert (await client.get("/user-sync")).status_code == 429
        anonymous = ClientAt("10.0.0.4")
        assert await statuses(anonymous, "/user", 1) == [200]


async def test_callable_key_with_cost_and_none_skips_limiting(tmp_path):
    async with object_host(tmp_path / "o"):
        client = ClientAt()
        assert await statuses(client, "/tenant?tenant=acme", 2) == [200, 429]  # cost 2 of 3
        assert await statuses(client, "/tenant", 5) == [200] * 5  # None: not limited
        free = await client.get("/tenant")
        assert "RateLimit" not in free


async def test_middleware_limits_a_prefix_by_method_in_async_and_sync_stacks(tmp_path):
    async with object_host(tmp_path / "o"):
        client = ClientAt("10.0.0.5")
        first = await client.get("/mw/a")
        assert first.status_code == 200 and parse_list(first["RateLimit"])[0][1]["r"] == 2
        assert (await client.post("/mw/a")).status_code == 200  # POST is not in the rule
        assert await statuses(client, "/mw/a", 3) == [200, 200, 429]
        assert (await client.get("/free")).status_code == 200  # outside the prefix
        # The WSGI (sync) stack: the same rule and key, run from a worker thread.
        sync_client = Client(REMOTE_ADDR="10.0.0.6")
        got = []
        for _ in range(4):
            async with ThreadSensitiveContext():  # as a WSGI worker thread of its own
                got.append((await sync_to_async(sync_client.get)("/mw/sync")).status_code)
        assert got == [200, 200, 200, 429]


async def test_runtime_unavailable_fails_closed_by_default_and_open_when_set(settings):
    # No object host runs in this process: the limiter cannot decide.
    client = ClientAt()
    closed = await client.get("/ip")
    assert closed.status_code == 503 and closed["Retry-After"] == "1"
    assert closed.json()["error"] == "unavailable"
    assert (await client.get("/mw/a")).status_code == 503
    settings.RATELIMIT_FAIL_OPEN = True
    opened = await client.get("/ip")
    assert opened.status_code == 200 and "RateLimit" not in opened
    assert (await client.get("/mw/a")).status_code == 200


def test_bad_key_specs_and_unknown_policies_are_configuration_errors():
    with pytest.raises(ImproperlyConfigured):
        rate_limit("t3", key="cookie")
    with pytest.raises(ImproperlyConfigured):
        rate_limit("t3", key="header:")


async def test_unknown_policy_in_a_decorator_is_reported_as_misconfiguration(tmp_path, settings):
    settings.RATELIMIT_POLICIES = {}
    async with object_host(tmp_path / "o"):
        with pytest.raises(ImproperlyConfigured, match="RATELIMIT_POLICIES"):
            await ClientAt(raise_request_exception=True).get("/ip")


async def test_an_inline_rate_limits_only_the_methods_it_names(tmp_path):
    """rate="2/m", method="POST": GETs are never counted, the third POST is refused."""
    async with object_host(tmp_path / "o"):
        client = ClientAt("10.0.0.7")
        assert await statuses(client, "/inline", 5) == [200] * 5
        posts = [(await client.post("/inline")).status_code for _ in range(3)]
        assert posts == [200, 200, 429]
        refused = await client.post("/inline")
        assert parse_list(refused["RateLimit-Policy"])[0] == (
            "tests.ratelimit.urls.inline_post_only",
            {"q": 2, "w": 60},
        )
        assert (await client.get("/inline")).json() == {"ok": True, "limited": False}


async def test_block_false_runs_the_view_and_says_the_request_was_limited(tmp_path):
    async with object_host(tmp_path / "o"):
        client = ClientAt("10.0.0.8")
        first = await client.get("/annotate")
        assert first.json() == {"ok": True, "limited": False}
        second = await client.get("/annotate")
        assert second.status_code == 200 and second.json() == {"ok": True, "limited": True}
        assert parse_list(second["RateLimit"])[0][1]["r"] == 0
        assert "Retry-After" not in second


def test_a_bad_inline_rate_or_both_a_policy_and_a_rate_are_configuration_errors():
    with pytest.raises(ImproperlyConfigured, match="not of the form"):
        rate_limit(rate="5/fortnight")(lambda request: None)
    with pytest.raises(ImproperlyConfigured, match="not both"):
        rate_limit("t3", rate="5/m")
