"""The Procfile's cluster topology under honcho: Redis plus two uvicorn hosts sharing one
VAR_DIR; both answer, and an object's calls through either host reach its one owner."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable_core.testing.redis_server import ACL_SELECTORS, find_redis_server
from tests._servers import ROOT, free_port, http, migrate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _free_base() -> int:
    """A port base whose +0, +100 and +200 are free (honcho gives PORT so)."""
    for _ in range(50):
        base = free_port()
        if base < 60000 and all(_is_free(base + n) for n in (100, 200)):
            return base
    raise RuntimeError("no free port base")


def _is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_honcho_runs_the_procfile_and_both_hosts_serve_one_owner_per_object(tmp_path: Path):
    var = tmp_path / "var"
    migrate(var)
    redis_port = free_port()
    base = _free_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env.update(
        VAR_DIR=str(var),
        REDIS_PORT=str(redis_port),
        DURABLE_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        DURABLE_ID_KEY=secrets.token_hex(32),
        DJANGO_SETTINGS_MODULE="config.settings",
        CREATE_RATE_LIMIT="0",
        # the venv's tools first, then the system redis-server (Redis 7, as in production)
        PATH=f"{Path(sys.executable).parent}:{Path(find_redis_server(ACL_SELECTORS)).parent}"
        f":{os.environ.get('PATH', '')}",
    )
    honcho = Path(sys.executable).parent / "honcho"
    log = open(tmp_path / "honcho.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(honcho), "start", "-f", str(ROOT / "Procfile"), "-p", str(base)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    webs = [f"http://127.0.0.1:{base + 100}", f"http://127.0.0.1:{base + 200}"]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if all(http("GET", f"{web}/healthz").status == 200 for web in webs):
                    break
            except OSError:
                pass
            output = (tmp_path / "honcho.log").read_text()
            assert process.poll() is None, output
            assert time.monotonic() < deadline, output
            time.sleep(0.3)
        hosts = [http("GET", f"{web}/healthz").body for web in webs]
        assert {h["mode"] for h in hosts} == {"cluster"}
        assert hosts[0]["host"] != hosts[1]["host"]
        values = [
            http("POST", f"{webs[i % 2]}/api/demo/counter/procfile").body["value"] for i in range(6)
        ]
        assert values == [1, 2, 3, 4, 5, 6]
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # honcho stops every process it started
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()
    output = (tmp_path / "honcho.log").read_text()
    assert "web1.1" in output and "web2.1" in output and "redis.1" in output
