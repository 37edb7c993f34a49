"""SIGTERM of a host with a full mailbox (issue 15): a bounded drain, nothing lost.

Two ``runobjects`` workers share one Redis. Worker A owns a slow counter; a client-only
process queues 1,000 increments on it (10 ms each: more work than one lease TTL), and
A gets SIGTERM while they wait. A renews its lease while it drains, stops draining at
the lease TTL, fails what is left with a retryable error and exits: within TTL + 2 s.
The client's router retries those on worker B. Every increment is answered, the
values are distinct, and the counter ends at exactly the number of answers: nothing
acknowledged was lost and nothing ran twice.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests._servers import MANAGE, ROOT, CommandProcess, server_env
from tests.cluster.conftest import SETTINGS, Cluster, wait_for

pytestmark = pytest.mark.slow

TTL = 2.0
CALLS = 1000

CLIENT_SCRIPT = """
import asyncio, json, sys
from durable_core.exceptions import DurableError
from durable_core.registry import get_namespace

async def main():
    counter = get_namespace("process_app.SlowCounter").get_by_name("drain")
    print("FIRST", await counter.increment(0.0), flush=True)
    sys.stdin.readline()  # the second worker is up
    calls = [asyncio.create_task(counter.increment(0.01)) for _ in range(CALLS)]
    await asyncio.sleep(0.5)
    print("QUEUED", flush=True)
    results = await asyncio.gather(*calls, return_exceptions=True)
    ok = [r for r in results if isinstance(r, int)]
    errors = [[type(r).__name__, getattr(r, "retryable", None), str(r)[:200]]
              for r in results if not isinstance(r, int)]
    final = await counter.value()
    print("RESULT " + json.dumps({"ok": ok, "errors": errors, "final": final}), flush=True)

asyncio.run(main())
"""


class Lines:
    """The lines a subprocess prints, read by a thread, waited for with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line)
        self.lines.put("")

    def wait(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            self.seen.append(line)
            if line.startswith(prefix):
                return line
            if not line:
                raise AssertionError(
                    f"no {prefix!r} line; the client printed:\n{''.join(self.seen)}"
                )


@pytest.mark.timeout(120)
def test_sigterm_with_1000_queued_calls_exits_within_ttl_plus_2s_losing_nothing(
    cluster: Cluster,
):
    env = {
        "DURABLE_REDIS_URL": cluster.redis_server.url,
        "DURABLE_LEASE_TTL": str(TTL),
        "DURABLE_MAILBOX_SIZE": str(2 * CALLS),
    }
    workers = []
    for name in ("a", "b"):
        workers.append(
            CommandProcess(
                ["runobjects"],
                cluster.var,
                cluster.tmp_path / f"{name}.log",
                settings=SETTINGS,
                env=env,
            )
        )
    a, b = workers
    client = None
    try:
        a.start()
        a.wait_output(" running", 30)
        client = subprocess.Popen(
            [sys.executable, str(MANAGE), "shell", "-c", f"CALLS = {CALLS}\n" + CLIENT_SCRIPT],
            cwd=ROOT,
            env=server_env(cluster.var, SETTINGS, env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert client.stdin is not None
        lines = Lines(client)
        assert lines.wait("FIRST", 30).split() == ["FIRST", "1"]
        b.start()
        b.wait_output(" running", 30)
        wait_for(
            lambda: sum(1 for h in cluster.registered_hosts().values() if h["beating"]) == 2,
            10,
            "both workers to register",
            cluster.logs,
        )
        client.stdin.write("go\n")
        client.stdin.flush()
        lines.wait("QUEUED", 30)
        a.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = a.wait_exit(TTL + 10)
        exited_in = time.monotonic() - sent
        assert code == 0, a.output()
        found = re.search(r"^RESULT (.*)$", lines.wait("RESULT", 60))
    finally:
        if client is not None and client.poll() is None:
            client.kill()
        for worker in workers:
            worker.cleanup()
    assert found
    result = json.loads(found.group(1))
    print(
        f"SIGTERM with {CALLS} queued: exited in {exited_in:.2f}s (TTL {TTL}s); "
        f"{len(result['ok'])} answered, {len(result['errors'])} failed"
    )
    assert exited_in <= TTL + 2, f"exited {exited_in:.2f}s after SIGTERM\n{a.output()}"
    for name, retryable, text in result["errors"]:
        assert retryable, (name, text)
    values = result["ok"]
    assert len(set(values)) == len(values), "an increment was applied twice"
    assert result["final"] == 1 + len(values), result["final"]
    assert len(values) == CALLS, f"{CALLS - len(values)} calls failed: {result['errors'][:5]}"
