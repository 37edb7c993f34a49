"""Fixtures of the WebSocket tests: the cluster ones (a private Redis, server processes
sharing one VAR_DIR) are those of tests/cluster, imported so that both suites run on the
same harness."""

from tests.cluster.conftest import cluster, redis_server  # noqa: F401
