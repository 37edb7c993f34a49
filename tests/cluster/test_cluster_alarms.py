"""Alarms in a cluster (DESIGN §8): once per due time, where the lease puts the object.

Three ``runserver`` hosts share one VAR_DIR and one Redis. The test app's
``process_app.Alarmed`` appends every ``on_alarm`` run, with the pid and the fencing
token of the activation that ran it, to VAR_DIR/alarm_attempts.jsonl (outside object
storage, so no run can hide). A run is judged against Redis: its token must be the one
of a lease held by the host with that pid, and no object may run twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from durable_core.hosts import parse_host_id
from tests.cluster.conftest import Cluster, ok, wait_for

pytestmark = pytest.mark.slow

ALARMED = "process_app.Alarmed"
POLL = 1.0  # the default DURABLE_ALARM_POLL_INTERVAL
SETTLE = 2.5 * POLL  # over two polls of every scheduler: time enough to fire again


def alarmed(name: str, action: str) -> str:
    return f"/t/alarmed/{name}/{action}"


def read_attempts(var: Path) -> list[dict]:
    """Every on_alarm run (committed or rolled back), oldest first."""
    log = var / "alarm_attempts.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def attempts_by_name(var: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for run in read_attempts(var):
        runs.setdefault(run["name"], []).append(run)
    return runs


def wait_until_fired(cluster: Cluster, names: list[str], timeout: float) -> None:
    """Wait until every object ran on_alarm and its alarm index entry is cleared."""
    wait_for(
        lambda: set(attempts_by_name(cluster.var)) >= set(names),
        timeout,
        f"on_alarm of all {len(names)} objects",
        cluster.logs,
    )
    server = cluster.servers[-1]

    def index_cleared() -> bool:
        entries = [ok(server.get(alarmed(n, "alarm-index")), server) for n in names]
        return all(e["exists"] and e["alarm_at"] is None for e in entries)

    wait_for(index_cleared, 5, "every alarm index entry to clear", cluster.logs)


@pytest.mark.timeout(60)
def test_twenty_alarms_over_three_hosts_fire_once_each_on_the_lease_holder(cluster: Cluster):
    """20 objects each get an alarm 2-3 s ahead, scheduled through the three hosts in
    turn (so each host owns some); every other one is then evicted (its lease released,
    the alarm left to the schedulers). Every alarm runs exactly once, on time, with the
    token of the lease Redis holds for it and on the host of that lease (pid); objects
    left active fire on the host and token they were scheduled under; evicted ones are
    activated afresh with a higher token by whichever scheduler claimed them. The index
    is cleared and nothing fires again over two more scheduler polls."""
    servers = cluster.start(3)
    host_ids = [cluster.host_id(s) for s in servers]
    pid_of = {h: parse_host_id(h)[1] for h in host_ids}
    assert [pid_of[h] for h in host_ids] == [s.pid for s in servers]
    names = [f"a{i}" for i in range(20)]
    keys = {name: cluster.object_id(name, ALARMED).key for name in names}

    due: dict[str, float] = {}
    scheduled_under: dict[str, tuple[str, int]] = {}
    evicted: set[str] = set()
    for i, name in enumerate(names):
        via = servers[i % 3]
        reply = ok(via.post(alarmed(name, "schedule"), {"delay": 2.0 + (i % 5) * 0.25}), via)
        due[name] = reply["alarm_at"]
        holder = cluster.lease_of(keys[name])
        assert holder is not None and holder[0] == host_ids[i % 3], (name, holder)
        scheduled_under[name] = holder
        other = servers[(i + 1) % 3]
        index = ok(other.get(alarmed(name, "alarm-index")), other)
        assert index["alarm_at"] == pytest.approx(due[name]), "index written before the reply"
        if i % 2:
            ok(other.post(alarmed(name, "evict")), other)  # routed to the owner
            wait_for(
                lambda name=name: cluster.lease_of(keys[name]) is None,
                2,
                f"{name} to release its lease",
                cluster.logs,
            )
            assert time.time() < due[name], f"{name} evicted after its alarm was due: too slow"
            evicted.add(name)

    wait_until_fired(cluster, names, max(due.values()) - time.time() + 3 * POLL + 5)
    time.sleep(SETTLE)

    runs = attempts_by_name(cluster.var)
    assert set(runs) == set(names), runs
    twice = {name: r for name, r in runs.items() if len(r) != 1}
    assert not twice, f"alarms that ran more than once: {twice}"
    lags = {}
    fired_by: dict[str, int] = {}
    for i, name in enumerate(names):
        [run] = runs[name]
        assert run["ok"] and run["retry_count"] == 0, run
        assert run["scheduled"] == pytest.approx(due[name]), run
        lags[name] = run["time"] - due[name]
        assert -0.01 <= lags[name] <= POLL + 1.0, (name, lags[name])
        holder = cluster.lease_of(keys[name])
        assert holder is not None and holder[1] == run["token"], (
            f"{name} ran with token {run['token']} but Redis holds {holder}"
        )
        assert pid_of.get(holder[0]) == run["pid"], (
            f"{name} ran in pid {run['pid']}, its lease is held by {holder[0]}"
        )
        if name in evicted:
            assert holder[1] > scheduled_under[name][1], (name, scheduled_under[name], holder)
        else:
            assert holder == scheduled_under[name], (name, scheduled_under[name], holder)
        fired_by[name] = host_ids.index(holder[0])
        other = servers[(i + 2) % 3]
        assert ok(other.get(alarmed(name, "firings")), other)["firings"] == [run]
    # Reading the firings activated nothing new and fired nothing again.
    assert attempts_by_name(cluster.var) == runs

    active_lags = [lags[n] for n in names if n not in evicted]
    evicted_lags = [lags[n] for n in evicted]
    print(
        f"lag of active objects' alarms: max {max(active_lags):.3f}s; of evicted ones: "
        f"min {min(evicted_lags):.3f}s max {max(evicted_lags):.3f}s; evicted alarms fired "
        f"on hosts {sorted(fired_by[n] for n in evicted)}"
    )


@pytest.mark.timeout(60)
def test_alarms_due_while_their_owner_is_killed_fire_once_on_a_survivor_by_takeover(
    cluster: Cluster,
):
    """Host V owns 6 objects whose alarms are due 2.5 s ahead, and is killed (kill -9)
    before they are due; its leases stay in Redis (TTL 10 s) past the due times. The
    schedulers of the two survivors claim the due alarms and take the dead host's
    leases over at once (its pid is gone) rather than waiting them out: each alarm runs
    exactly once, on a survivor, before V's lease would have expired, with a higher
    token than V's, held by the survivor that ran it; the index is cleared."""
    servers = cluster.start(3, env={"DURABLE_LEASE_TTL": "10"})
    victim, survivors = servers[0], servers[1:]
    victim_id = cluster.host_id(victim)
    survivor_ids = {cluster.host_id(s): s.pid for s in survivors}
    names = [f"d{i}" for i in range(6)]
    keys = {name: cluster.object_id(name, ALARMED).key for name in names}

    due: dict[str, float] = {}
    victim_tokens: dict[str, int] = {}
    for name in names:
        due[name] = ok(victim.post(alarmed(name, "schedule"), {"delay": 2.5}), victim)["alarm_at"]
        holder = cluster.lease_of(keys[name])
        assert holder is not None and holder[0] == victim_id, (name, holder)
        victim_tokens[name] = holder[1]
    victim.kill9()
    assert time.time() < min(due.values()) - 0.5, "V died too late: test too slow"
    expiry = {}
    for name in names:
        assert cluster.lease_of(keys[name]) == (victim_id, victim_tokens[name])
        expiry[name] = cluster.lease_expiry(keys[name])
        assert expiry[name] > due[name] + POLL + 1.0, "V's lease would expire too early"

    wait_until_fired(cluster, names, max(due.values()) - time.time() + 3 * POLL + 5)
    time.sleep(SETTLE)

    runs = attempts_by_name(cluster.var)
    twice = {name: r for name, r in runs.items() if len(r) != 1}
    assert not twice, f"alarms that ran more than once: {twice}"
    lags = []
    for name in names:
        [run] = runs[name]
        assert run["ok"] and run["retry_count"] == 0, run
        assert run["pid"] in survivor_ids.values(), f"{name} ran in pid {run['pid']}"
        assert due[name] - 0.01 <= run["time"] < expiry[name], (
            f"{name} fired at {run['time']:.2f}, due {due[name]:.2f}, V's lease ran out at "
            f"{expiry[name]:.2f}: not taken over"
        )
        lags.append(run["time"] - due[name])
        holder = cluster.lease_of(keys[name])
        assert holder is not None and holder[1] == run["token"] > victim_tokens[name], (
            name,
            victim_tokens[name],
            run["token"],
            holder,
        )
        assert survivor_ids.get(holder[0]) == run["pid"], (name, holder, run)
        assert ok(survivors[0].get(alarmed(name, "firings")), *survivors)["firings"] == [run]
    assert attempts_by_name(cluster.var) == runs
    spread = sorted(r[0]["pid"] for r in runs.values())
    print(
        f"alarms of the killed host fired {min(lags):.2f}-{max(lags):.2f}s after due; pids {spread}"
    )
