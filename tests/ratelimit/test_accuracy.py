"""Accuracy across real processes: 3 cluster hosts, 4 client OS processes over HTTP.

From the servers' own decision times (``at`` in every answer) no window of ``period``
seconds may hold more than ``limit`` admissions, and under saturating demand the total
must be at least ``limit * periods - limit``. Also over 1,000 keys, and across a
``kill -9`` and a graceful restart of the owner.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests._servers import ROOT
from tests.ratelimit._checks import max_in_any_window
from tests.ratelimit.conftest import POLICY_ENV, TEST_POLICIES

pytestmark = pytest.mark.slow

PROCESSES = 4
CONNECTIONS = 32


def run_clients(
    urls: list[str],
    out: Path,
    *,
    policy: str,
    key: str | None = None,
    duration: float = 0.0,
    keys: int = 0,
    connections: int = CONNECTIONS,
    wait: bool = True,
) -> list[subprocess.Popen] | list[list]:
    """Start ``PROCESSES`` client processes (``tests/ratelimit/_load.py``) together."""
    start_at = time.time() + 1.5  # all begin at once, after their interpreters started
    procs = []
    for n in range(PROCESSES):
        args = [
            sys.executable,
            "-m",
            "tests.ratelimit._load",
            "--urls",
            ",".join(urls),
            "--policy",
            policy,
            "--connections",
            str(connections),
            "--offset",
            str(n),
            "--start-at",
            str(start_at),
            "--out",
            str(out / f"client{n}.jsonl"),
        ]
        args += ["--keys", str(keys)] if keys else ["--key", key, "--duration", str(duration)]
        procs.append(subprocess.Popen(args, cwd=ROOT))
    return collect(procs, out, timeout=duration + 90) if wait else procs


def collect(procs: list[subprocess.Popen], out: Path, timeout: float) -> list[list]:
    """Wait for the clients (bounded) and return every answer they recorded."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise AssertionError("client processes did not finish in time") from None
        assert proc.returncode == 0, f"client exited with {proc.returncode}"
    rows = []
    for n in range(len(procs)):
        with open(out / f"client{n}.jsonl") as lines:
            rows.extend(json.loads(line) for line in lines)
    return rows


def test_one_hot_key_at_ten_times_its_limit_never_over_admits(cluster, tmp_path):
    policy = TEST_POLICIES["hot"]
    limit, period, periods = policy["limit"], policy["period"], 3
    servers = cluster.start(3, env=POLICY_ENV)
    rows = run_clients(
        [s.url for s in servers], tmp_path, policy="hot", key="one", duration=period * periods
    )
    statuses = Counter(row[0] for row in rows)
    assert set(statuses) <= {200, 429}, f"{statuses}\n{cluster.logs()[-5000:]}"
    assert len(rows) >= 10 * limit * periods, f"offered load too low: {statuses}"
    admitted = [row[2] for row in rows if row[0] == 200]
    most, where = max_in_any_window(admitted, period)
    assert most <= limit, f"{most} admissions in the window starting at {where}"
    assert len(admitted) >= limit * periods - limit, statuses
    # A refusal while the log is full says how long until the next unit frees up.
    assert all(0 < row[3] <= period for row in rows if row[0] == 429)
    print(f"hot key: {statuses}, {len(rows) / (period * periods):.0f} req/s offered")


def test_a_thousand_keys_are_limited_independently(cluster, tmp_path):
    """Each of 4 processes sends every key once (4 per key, via different hosts): each
    key admits exactly its limit of 2, whatever the other 999 keys do."""
    limit = TEST_POLICIES["many"]["limit"]
    servers = cluster.start(3, env=POLICY_ENV)
    rows = run_clients([s.url for s in servers], tmp_path, policy="many", keys=1000)
    statuses = Counter(row[0] for row in rows)
    assert set(statuses) <= {200, 429}, f"{statuses}\n{cluster.logs()[-5000:]}"
    per_key: dict[str, list] = defaultdict(list)
    for row in rows:
        per_key[row[1]].append(row)
    assert len(per_key) == 1000 and all(len(got) == PROCESSES for got in per_key.values())
    wrong = {
        key: [r[0] for r in got]
        for key, got in per_key.items()
        if sum(r[0] == 200 for r in got) != limit
    }
    assert not wrong, f"{len(wrong)} keys not limited to {limit}: {list(wrong.items())[:5]}"
    for got in per_key.values():
        # remaining counts down per key: 1, 0 for the admitted, 0 for the refused
        assert sorted(r[4] for r in got) == [0, 0, 0, 1]


def test_kill_9_and_restart_of_the_owner_keep_the_guarantee(cluster, tmp_path):
    policy = TEST_POLICIES["hot"]
    limit, period = policy["limit"], policy["period"]
    servers = cluster.start(3, env=POLICY_ENV)
    by_host = {cluster.host_id(s): s for s in servers}
    object_key = cluster.object_id("hot:failover", "ratelimit.Limiter").key
    procs = run_clients(
        [s.url for s in servers],
        tmp_path,
        policy="hot",
        key="failover",
        duration=10.0,
        connections=8,
        wait=False,
    )

    def owner():
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            lease = cluster.lease_of(object_key)
            if lease and lease[0] in by_host and by_host[lease[0]].proc.poll() is None:
                return by_host[lease[0]]
            time.sleep(0.05)
        raise AssertionError(f"no live owner of {object_key}\n{cluster.logs()[-5000:]}")

    time.sleep(1.5 + 2.5)
    killed_at = time.time()
    owner().kill9()
    time.sleep(3.0)
    restarted_at = time.time()
    second = owner()
    second.terminate(20)  # graceful: drains, commits, releases its leases
    cluster.start(1, env=POLICY_ENV)  # a replacement joins (clients keep their servers)
    rows = collect(procs, tmp_path, timeout=60)

    statuses = Counter(row[0] for row in rows)
    assert 500 not in statuses, statuses
    admitted = [row[2] for row in rows if row[0] == 200]
    most, where = max_in_any_window(admitted, period)
    assert most <= limit, f"{most} admissions in the window starting at {where}: {statuses}"
    # The limiter came back after each event.
    assert any(at > killed_at + 0.5 for at in admitted), statuses
    assert any(at > restarted_at + 0.5 for at in admitted), statuses
    print(f"failover: {statuses}")
