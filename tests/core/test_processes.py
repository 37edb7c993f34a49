"""Real server processes: durability across kill -9, alarms across restarts, the storage
directory lock, and the storage fence between two processes on one object file.

Each server is ``manage.py runserver --noreload`` (Daphne plus the embedded host) with
its own ``VAR_DIR`` under ``tmp_path``, talked to over HTTP on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests._servers import HttpResult, ServerProcess, migrate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PROCESS_SETTINGS = "tests.process_settings"
COUNTER = "/api/demo/counter/{}"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Make ServerProcess objects logging under tmp_path; all are killed at teardown."""
    made: list[ServerProcess] = []

    def make(
        var_dir: Path, name: str, *, settings: str = "config.settings", env: dict | None = None
    ) -> ServerProcess:
        server = ServerProcess(var_dir, tmp_path / f"{name}.log", settings=settings, env=env)
        made.append(server)
        return server

    yield make
    for server in made:
        server.cleanup()


def wait_for(check: Callable[[], Any], timeout: float, what: str, *servers: ServerProcess) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds,
    showing the output of ``servers``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(server.output() for server in servers)
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}\n{logs}")
        time.sleep(0.1)


def ok(result: HttpResult, *servers: ServerProcess) -> Any:
    """The JSON body of a 200 response; anything else fails with the servers' output."""
    if result.status != 200:
        logs = "\n".join(server.output() for server in servers)
        raise AssertionError(f"expected 200, got {result}\n{logs}")
    return result.body


# -- durability --------------------------------------------------------------------------


def test_every_acknowledged_increment_survives_kill_9(servers, tmp_path):
    """200 sequential and 200 concurrent POSTs, kill -9 right after the last reply,
    restart: the counter equals the number of acknowledged increments, and the
    acknowledged values are exactly 1..N (none lost, none applied twice)."""
    var = tmp_path / "var"
    migrate(var)
    server = servers(var, "server").run()
    path = COUNTER.format("durable")

    acked = [ok(server.post(path), server)["value"] for _ in range(200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: server.post(path), range(200)))
    acked += [ok(reply, server)["value"] for reply in replies]

    server.kill9()  # no shutdown code runs: only what was committed may remain
    server.run()

    assert sorted(acked) == list(range(1, len(acked) + 1))
    assert ok(server.get(path), server)["value"] == len(acked) == 400


def test_acknowledged_increments_survive_kill_9_during_traffic(servers, tmp_path):
    """kill -9 while 6 threads keep POSTing: after the restart the counter holds at least
    every acknowledged increment and at most the attempted ones, and the acknowledged
    values are distinct (a reply leaves only after its commit: DESIGN §5, §6)."""
    var = tmp_path / "var"
    migrate(var)
    server = servers(var, "server").run()
    path = COUNTER.format("busy")
    acked: list[int] = []
    attempts = 0
    lock = threading.Lock()
    stop = threading.Event()

    def hammer() -> None:
        nonlocal attempts
        while not stop.is_set():
            with lock:
                attempts += 1
            try:
                result = server.post(path, timeout=5)
            except OSError:
                return  # the server died under this request: not acknowledged
            if result.status == 200:
                with lock:
                    acked.append(result.body["value"])

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(acked) >= 300, 20, "300 acknowledged increments", server)
        server.kill9()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not any(thread.is_alive() for thread in threads)

    server.run()
    value = ok(server.get(path), server)["value"]
    assert len(set(acked)) == len(acked), "an increment was acknowledged twice"
    assert max(acked) <= value, f"acknowledged {max(acked)}, found {value} after restart"
    assert len(acked) <= value <= attempts


# -- alarms ------------------------------------------------------------------------------


def read_attempts(var: Path) -> list[dict]:
    """Every on_alarm run (committed or rolled back), from the test app's log file."""
    log = var / "alarm_attempts.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_alarm_fires_once_after_restart_without_any_call(servers, tmp_path, stop):
    """An alarm set 3 s ahead, then the server stops (graceful or kill -9) and restarts:
    the new process fires it on its own (no call reaches the object first), once."""
    var = tmp_path / "var"
    migrate(var, PROCESS_SETTINGS)
    server = servers(var, "server", settings=PROCESS_SETTINGS).run()
    alarm_at = ok(server.post("/t/alarmed/wake/schedule", {"delay": 3}), server)["alarm_at"]
    index = ok(server.get("/t/alarmed/wake/alarm-index"), server)
    assert index["alarm_at"] == pytest.approx(alarm_at), "the index is written before the reply"

    if stop == "SIGTERM":
        assert server.terminate() == 0, server.output()
        assert "object host" in server.output() and "stopped" in server.output()
    else:
        server.kill9()
    assert time.time() < alarm_at, "the first server lived past the alarm: test too slow"
    first_pid = server.pid
    server.run()

    # Only the Django index is read while waiting: nothing activates the object.
    wait_for(
        lambda: ok(server.get("/t/alarmed/wake/alarm-index"), server)["alarm_at"] is None,
        max(0, alarm_at - time.time()) + 10,
        "the alarm index entry to clear after the firing",
        server,
    )
    attempts = read_attempts(var)
    assert len(attempts) == 1, attempts
    assert attempts[0]["pid"] == server.pid != first_pid
    assert attempts[0]["time"] >= alarm_at
    firings = ok(server.get("/t/alarmed/wake/firings"), server)["firings"]
    assert firings == attempts
    assert firings[0]["retry_count"] == 0
    assert firings[0]["scheduled"] == pytest.approx(alarm_at)

    time.sleep(2.5)  # over two scheduler polls: nothing fires a second time
    assert read_attempts(var) == attempts
    assert ok(server.get("/t/alarmed/wake/firings"), server)["firings"] == firings


def test_raising_alarm_is_rolled_back_and_retried_after_2_seconds(servers, tmp_path):
    """on_alarm raises on its first run: that run's writes are rolled back, and the
    retry runs about 2 s later with retry_count 1 and commits (DESIGN §8)."""
    var = tmp_path / "var"
    migrate(var, PROCESS_SETTINGS)
    server = servers(var, "server", settings=PROCESS_SETTINGS).run()
    ok(server.post("/t/alarmed/flaky/fail-times", {"times": 1}), server)
    ok(server.post("/t/alarmed/flaky/schedule", {"delay": 0.5}), server)

    wait_for(lambda: len(read_attempts(var)) >= 2, 15, "the failed run and its retry", server)
    wait_for(
        lambda: ok(server.get("/t/alarmed/flaky/alarm-index"), server)["alarm_at"] is None,
        5,
        "the alarm index entry to clear after the successful retry",
        server,
    )
    failed, retried = read_attempts(var)
    assert (failed["retry_count"], failed["ok"]) == (0, False)
    assert (retried["retry_count"], retried["ok"]) == (1, True)
    assert 1.9 <= retried["time"] - failed["time"] <= 4.0, (failed, retried)
    # Only the committed run is in storage: the failed run's append was rolled back.
    assert ok(server.get("/t/alarmed/flaky/firings"), server)["firings"] == [retried]
    time.sleep(2.5)
    assert len(read_attempts(var)) == 2, "the alarm ran again after its committed run"


# -- two processes, one storage directory -----------------------------------------------


def test_second_server_on_a_locked_storage_dir_exits_with_a_clear_message(servers, tmp_path):
    """A second embedded server on the same VAR_DIR exits non-zero, naming the storage
    directory and the pid holding it; the first keeps serving."""
    var = tmp_path / "var"
    migrate(var)
    first = servers(var, "first").run()
    ok(first.post(COUNTER.format("lock")), first)

    second = servers(var, "second").start()
    assert second.wait_exit(20) != 0
    output = second.output()
    assert f"storage directory {var / 'objects'} is in use" in output, output
    assert f"pid {first.pid}" in output, output
    assert "Traceback" not in output, output

    assert ok(first.get("/healthz"), first)["pid"] == first.pid
    assert ok(first.post(COUNTER.format("lock")), first)["value"] == 2


def test_fence_refuses_the_stale_process_and_loses_no_update(servers, tmp_path):
    """Two servers on one object file (directory lock bypassed): each activation takes a
    token above the stored fence, so the other's instance becomes stale; its next commit
    is refused, it is evicted, and the retry re-activates and re-reads. Alternating POSTs
    therefore return 1, 2, 3, ... and the refusals appear in both logs."""
    var = tmp_path / "var"
    migrate(var)
    env = {"DURABLE_LOCK_STORAGE_DIR": "false"}
    a = servers(var, "a", env=env).run()
    b = servers(var, "b", env=env).run()
    path = COUNTER.format("shared")

    values = []
    for i in range(8):
        server = (a, b)[i % 2]
        values.append(ok(server.post(path), a, b)["value"])
    assert values == list(range(1, 9))
    assert ok(a.get(path), a, b)["value"] == ok(b.get(path), a, b)["value"] == 8
    assert "refused to commit" in a.output(), a.output()
    assert "refused to commit" in b.output(), b.output()


def test_alarm_due_on_a_stale_instance_fires_after_reactivation(servers, tmp_path):
    """A sets an alarm; B activates the object (raising the stored fence) and dies. When
    the alarm is due, A's in-process timer fires on its stale instance: the fence refuses
    it, A evicts, and the alarm runs once in a fresh activation; nothing hangs."""
    var = tmp_path / "var"
    migrate(var, PROCESS_SETTINGS)
    # A short call deadline keeps the failure of a hung object within the test's bound.
    env = {"DURABLE_LOCK_STORAGE_DIR": "false", "DURABLE_CALL_TIMEOUT": "5"}
    a = servers(var, "a", settings=PROCESS_SETTINGS, env=env).run()
    b = servers(var, "b", settings=PROCESS_SETTINGS, env=env).run()
    alarm_at = ok(a.post("/t/alarmed/contested/schedule", {"delay": 2}), a)["alarm_at"]
    assert ok(b.get("/t/alarmed/contested/firings"), a, b)["firings"] == []
    b.kill9()
    assert time.time() < alarm_at, "B lived past the alarm: test too slow"

    wait_for(
        lambda: ok(a.get("/t/alarmed/contested/alarm-index"), a)["alarm_at"] is None,
        max(0, alarm_at - time.time()) + 10,
        "the alarm index entry to clear after the firing",
        a,
    )
    attempts = read_attempts(var)
    assert len(attempts) == 1, attempts
    assert attempts[0]["pid"] == a.pid
    assert ok(a.get("/t/alarmed/contested/firings", timeout=10), a)["firings"] == attempts
    assert "refused to commit" in a.output(), a.output()
