"""Nobody can spend another client's quota through the public REST API (issue 16 §5):
keys that ``@rate_limit`` and the middleware derive (``ip:…``, ``user:…``,
``header:…``) are a key space of their own, whatever the policy's flags, and no client
address or API key is stored as an object name."""

from __future__ import annotations

import pytest

from durable_core.models import ObjectRecord
from durable_core.testing import object_host
from tests.ratelimit.test_django import ClientAt, statuses

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.ratelimit.urls"),
    pytest.mark.timeout(60),
]


@pytest.fixture(autouse=True)
def policies(settings):
    settings.RATELIMIT_POLICIES = {"t3": {"limit": 3, "period": 60}}  # public (the default)
    settings.RATELIMIT_FAIL_OPEN = False


@pytest.mark.parametrize(
    ("path", "extra", "derived_key"),
    [
        ("/ip", {}, "ip:203.0.113.5"),
        ("/header", {"headers": {"x-api-key": "s3cret-key"}}, "header:x-api-key:s3cret-key"),
    ],
)
async def test_rest_cannot_spend_the_quota_a_decorator_derives(tmp_path, path, extra, derived_key):
    async with object_host(tmp_path / "o"):
        victim, attacker = ClientAt("203.0.113.5"), ClientAt("198.51.100.9")
        for _ in range(5):  # the attacker drains what it believes is the victim's key
            spent = await attacker.post(
                f"/api/ratelimit/t3/{derived_key}", {"cost": 1}, content_type="application/json"
            )
            assert spent.status_code in (200, 429)
        drained = await attacker.get(f"/api/ratelimit/t3/{derived_key}")
        assert drained.json()["remaining"] == 0  # the public key itself is limited
        # The victim's own quota is untouched.
        assert await statuses(victim, path, 4, **extra) == [200, 200, 200, 429]
        names = [name async for name in ObjectRecord.objects.values_list("name", flat=True)]
        assert all("203.0.113.5" not in n or n.startswith("t3:") for n in names), names
        assert not any("s3cret" in n and not n.startswith("t3:") for n in names), names
