"""Fixtures of the rate limiter tests: a real server with short test policies, and the
cluster harness of tests/cluster (imported so both suites run on the same harness)."""

from __future__ import annotations

import json

import pytest

from tests._servers import running_server
from tests.cluster.conftest import cluster, redis_server  # noqa: F401

# Short policies for server processes (RATELIMIT_POLICIES_JSON, read by config/settings.py).
TEST_POLICIES = {
    "t2": {"limit": 2, "period": 2},
    "t5": {"limit": 5, "period": 30},
    "hot": {"limit": 20, "period": 2},
    "many": {"limit": 2, "period": 60},
    "big": {"limit": 50, "period": 60},
    "odd name": {"limit": 3, "period": 1.5},
}
POLICY_ENV = {"RATELIMIT_POLICIES_JSON": json.dumps(TEST_POLICIES)}


@pytest.fixture(scope="module")
def rl_server(tmp_path_factory):
    """One embedded demo server (config.settings) with the test policies, per module."""
    with running_server(tmp_path_factory.mktemp("rl-server"), POLICY_ENV) as server:
        yield server
