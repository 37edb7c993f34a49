"""Fixtures of the cluster tests: a private Redis and N server processes sharing one VAR_DIR.

Every server is ``manage.py runserver --noreload`` (Daphne plus a cluster host) with
``DURABLE_REDIS_URL`` pointing at the test's own ``redis-server`` on 127.0.0.1. All of
them share one ``VAR_DIR`` (one Django database, one object storage directory), as the
hosts of one machine do (DESIGN §2). Everything is killed at teardown, paused ones too.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from durable_core.ids import ObjectId, reset_id_key_cache
from durable_core.testing.redis_server import ACL_SELECTORS, RedisServer
from tests._servers import HttpResult, ServerProcess, migrate

SETTINGS = "tests.process_settings"  # the demo counter plus the test app's objects
COUNTER = "demo.Counter"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free 127.0.0.1 port, without persistence: Redis 7 or
    newer, since ``Cluster.publish_only_to`` drops messages with ACL selectors."""
    server = RedisServer(tmp_path / "redis", min_version=ACL_SELECTORS).start()
    try:
        yield server
    finally:
        server.stop()


class Cluster:
    """Server processes of one cluster: one Redis, one shared VAR_DIR."""

    def __init__(self, tmp_path: Path, redis_server: RedisServer) -> None:
        self.tmp_path = tmp_path
        self.redis_server = redis_server
        self.var = tmp_path / "var"
        self.servers: list[ServerProcess] = []
        self.redis = redis.Redis.from_url(redis_server.url, socket_timeout=5)
        migrate(self.var, SETTINGS)
        # The ID key is written here (as the first server would), so the test computes
        # the same object IDs as the servers do.
        self.id_key = secrets.token_hex(32)
        (self.var / "id_key").write_text(self.id_key + "\n")

    def start(self, count: int, env: dict[str, str] | None = None) -> list[ServerProcess]:
        """Start ``count`` servers at once and wait until all answer /healthz."""
        extra = {"DURABLE_REDIS_URL": self.redis_server.url, **(env or {})}
        made = []
        for _ in range(count):
            name = f"host{len(self.servers)}"
            server = ServerProcess(
                self.var, self.tmp_path / f"{name}.log", settings=SETTINGS, env=extra
            )
            self.servers.append(server)
            made.append(server.start())
        for server in made:
            server.wait_ready(30)
        return made

    def host_id(self, server: ServerProcess) -> str:
        """The host id a server runs under (from its /healthz)."""
        return ok(server.get("/healthz"), server)["host"]

    # -- what Redis says -------------------------------------------------------------

    def object_id(self, name: str, namespace: str = COUNTER) -> ObjectId:
        """The ID the servers give ``name`` (computed with the cluster's ID key)."""
        from django.test import override_settings

        reset_id_key_cache()
        try:
            with override_settings(DURABLE_OBJECTS={"ID_KEY": self.id_key}):
                return ObjectId.from_name(namespace, name)
        finally:
            reset_id_key_cache()

    def lease_holders(self) -> dict[str, tuple[str, int]]:
        """Every lease in Redis: object key (``ns:hex``) → (host id, token)."""
        holders = {}
        for raw in self.redis.scan_iter(match="durable:lease:*", count=1000):
            key = raw.decode()
            value = self.redis.get(key)
            if value is None:
                continue  # expired between SCAN and GET
            host, _, token = value.decode().rpartition("|")
            holders[key.removeprefix("durable:lease:{").removesuffix("}")] = (host, int(token))
        return holders

    def lease_of(self, object_key: str) -> tuple[str, int] | None:
        """The lease of one object (``ns:hex``) as (host id, token), None when free."""
        value = self.redis.get(f"durable:lease:{{{object_key}}}")
        if value is None:
            return None
        host, _, token = value.decode().rpartition("|")
        return host, int(token)

    def lease_expiry(self, object_key: str) -> float | None:
        """Epoch time at which the object's lease runs out unless renewed (None: free)."""
        pttl = self.redis.pttl(f"durable:lease:{{{object_key}}}")
        return None if pttl < 0 else time.time() + pttl / 1000

    def fence_counter(self, object_key: str) -> int | None:
        """The fencing counter Redis keeps for an object (None when it has none)."""
        value = self.redis.get(f"durable:fence:{{{object_key}}}")
        return None if value is None else int(value)

    def registered_hosts(self) -> dict[str, dict[str, Any]]:
        """The ``durable:hosts`` hash: host id → its entry, plus whether its heartbeat
        key exists right now (``beating``)."""
        import json

        hosts = {}
        for raw_id, raw in self.redis.hgetall("durable:hosts").items():
            host_id = raw_id.decode()
            entry = json.loads(raw)
            entry["beating"] = bool(self.redis.exists(f"durable:hb:{host_id}"))
            hosts[host_id] = entry
        return hosts

    # -- what the object files say -------------------------------------------------------

    def stored_fence(self, object_id: ObjectId) -> int | None:
        """The fence stored in the object's SQLite file (read-only), None if no file."""
        path = self.var / "objects" / object_id.namespace / object_id.hex[:2]
        path = path / f"{object_id.hex}.sqlite3"
        if not path.exists():
            return None
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT value FROM _do_meta WHERE key='fence'").fetchone()
        finally:
            conn.close()
        return None if row is None else int(row[0])

    def inbox(self, server: ServerProcess) -> str:
        """The transport channel the server receives calls and replies on."""
        return self.registered_hosts()[self.host_id(server)]["channel"]

    @contextlib.contextmanager
    def publish_only_to(self, *channels: str) -> Iterator[None]:
        """For the block, Redis refuses every PUBLISH except to ``channels`` (an ACL
        selector on the default user), as if those messages were lost on the way;
        subscriptions are left alone."""
        allowed = " ".join(f"&{channel}" for channel in channels)
        self._acl("-publish", f"(+publish resetchannels {allowed})")
        try:
            yield
        finally:
            self._acl("+publish", "clearselectors")

    @contextlib.contextmanager
    def channels_only(self, *channels: str) -> Iterator[None]:
        """For the block, Redis lets clients use only ``channels`` (an ACL on the default
        user): subscribers of any other channel are disconnected and cannot subscribe
        again, publishing elsewhere is refused."""
        self._acl("resetchannels", *(f"&{channel}" for channel in channels))
        try:
            yield
        finally:
            self._acl("allchannels")

    def _acl(self, *rules: str) -> None:
        self.redis.execute_command("ACL", "SETUSER", "default", *rules)

    def logs(self) -> str:
        """The output of every server, for assertion messages."""
        return "\n".join(server.output() for server in self.servers)

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()  # SIGKILL also ends a stopped (SIGSTOP) process
        self.redis.close()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    """A cluster without servers yet (``cluster.start(n)``); all killed at teardown."""
    made = Cluster(tmp_path, redis_server)
    try:
        yield made
    finally:
        made.cleanup()


def ok(result: HttpResult, *servers: ServerProcess) -> Any:
    """The JSON body of a 200 response; anything else fails with the servers' output."""
    if result.status != 200:
        logs = "\n".join(server.output() for server in servers)
        raise AssertionError(f"expected 200, got {result}\n{logs}")
    return result.body


def wait_for(check: Callable[[], Any], timeout: float, what: str, logs: Callable[[], str]) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}\n{logs()}")
        time.sleep(0.1)
