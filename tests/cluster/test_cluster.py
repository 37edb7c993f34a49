"""Cluster mode with real processes and a real Redis (issue 3, "Must show").

Each test starts its own ``redis-server`` and ``manage.py runserver`` processes on
127.0.0.1 that share one VAR_DIR, drives them over HTTP with counter increments that
carry Idempotency-Keys (the call id), and judges the result by exact counts: per
counter, the acknowledged values must be exactly 1..n for n increments, so a lost or a
doubly applied increment, or a stale reply, fails the test.

The last tests lose messages between two hosts on purpose (a Redis ACL refuses some
PUBLISH or SUBSCRIBE commands for a moment, as a dropped connection would lose them)
to check that the router's acks and resends recover without running a call twice.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cluster._load import COUNTER_PATH, Load
from tests.cluster.conftest import Cluster, ok, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.timeout(150)
def test_three_hosts_2000_concurrent_increments_end_exact_with_one_owner_each(
    cluster: Cluster,
):
    """3 hosts, 50 counters, 2,000 increments from 16 concurrent clients spread over all
    hosts: every counter ends exact (the same on every host), and each object has one
    lease, held by a live registered host whose heartbeat reports exactly that many
    active objects (no object is active on two hosts)."""
    servers = cluster.start(3)
    names = [f"c{i}" for i in range(50)]
    load = Load(servers, names)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: load.increment(names[i % 50], give_up=60), range(2000)))
    elapsed = time.monotonic() - started
    print(f"2000 increments in {elapsed:.1f}s, {load.failed_attempts} failed attempts")

    counts = load.check_exact()
    assert sum(counts.values()) == 2000
    assert {a.server for a in load.acks.values()} == {0, 1, 2}, "clients used every host"
    for name in names:
        for server in servers:
            assert ok(server.get(COUNTER_PATH.format(name)), *servers)["value"] == counts[name]

    host_ids = {cluster.host_id(s) for s in servers}
    holders = cluster.lease_holders()
    keys = {cluster.object_id(name).key for name in names}
    assert set(holders) == keys, "exactly the 50 counters hold leases"
    owners = {host for host, _token in holders.values()}
    assert owners <= host_ids, f"leases held by unknown hosts: {owners - host_ids}"
    registered = cluster.registered_hosts()
    assert set(registered) == host_ids and all(h["beating"] for h in registered.values())

    def heartbeats_agree() -> bool:
        # Each host's heartbeat counts its active objects: they must match its leases.
        registered = cluster.registered_hosts()
        return all(
            registered[h]["objects"] == sum(1 for o, _ in holders.values() if o == h)
            for h in host_ids
        )

    wait_for(heartbeats_agree, 5, "heartbeats to report one activation per lease", cluster.logs)
    assert cluster.lease_holders() == holders, "an owner changed while nothing failed"
    assert load.failed_attempts == 0, load.failures[:20]


@pytest.mark.timeout(120)
def test_kill_9_of_an_owner_mid_load_fails_over_within_2_ttl_losing_and_doubling_nothing(
    cluster: Cluster,
):
    """kill -9 of the host owning the most counters while 6 clients increment 20
    counters through all hosts (each increment retried with its Idempotency-Key, on
    another live host, until acknowledged): every counter the dead host owned takes an
    increment sent after the kill within 2 x lease TTL (default 5 s); at the end every
    key is acknowledged once and each counter's values are exactly 1..n; a re-sent key
    returns its first value and changes nothing; the dead host's leases moved to live
    hosts with higher tokens."""
    ttl = 5.0  # the default DURABLE_LEASE_TTL
    servers = cluster.start(3)
    names = [f"k{i}" for i in range(20)]
    load = Load(servers, names)
    for i, name in enumerate(names):  # first access wins: every host owns some counters
        assert load.increment(name, via=i % 3, give_up=10) is not None
    load.start(6)
    try:
        load.wait_acks(300, 30)
        host_ids = [cluster.host_id(s) for s in servers]
        before = cluster.lease_holders()
        owned = {i: [k for k, (h, _) in before.items() if h == host_ids[i]] for i in range(3)}
        victim = max(owned, key=lambda i: len(owned[i]))
        assert owned[victim], f"no host owns anything: {before}"
        victim_keys = set(owned[victim])
        victim_names = [n for n in names if cluster.object_id(n).key in victim_keys]

        servers[victim].kill9()
        killed = time.monotonic()
        load.mark_dead(victim)

        def served_again() -> dict[str, float]:
            firsts = {}
            for name in victim_names:
                after = [a.acked for a in load.acks_of(name) if a.sent >= killed]
                if after:
                    firsts[name] = min(after) - killed
            return firsts if len(firsts) == len(victim_names) else {}

        failover = wait_for(
            served_again, 2 * ttl + 5, "the dead host's counters to serve again", cluster.logs
        )
        time.sleep(1.0)  # keep the load on a little past the failover
    finally:
        load.stop()
    print(
        f"kill -9 of host{victim} owning {len(victim_names)} counters: first increment "
        f"after {min(failover.values()):.2f}s, all served after {max(failover.values()):.2f}s"
    )
    assert max(failover.values()) <= 2 * ttl, failover

    assert load.resolve() == []
    counts = load.check_exact()

    live = [s for i, s in enumerate(servers) if i != victim]
    for name in names:
        for server in live:
            assert ok(server.get(COUNTER_PATH.format(name)), *live)["value"] == counts[name]

    # A key sent again returns its first result and applies nothing (the call id window).
    sample = list(load.acks.values())[:: max(1, len(load.acks) // 20)]
    for ack in sample:
        again = ok(
            live[0].post(COUNTER_PATH.format(ack.name), headers={"Idempotency-Key": ack.key}),
            *live,
        )
        assert again["value"] == ack.value, (ack, again)
    for name in names:
        assert ok(live[1].get(COUNTER_PATH.format(name)), *live)["value"] == counts[name]

    after = cluster.lease_holders()
    live_ids = {host_ids[i] for i in range(3) if i != victim}
    for key in victim_keys:
        holder = after.get(key)
        assert holder is not None and holder[0] in live_ids, (key, holder)
        assert holder[1] > before[key][1], f"{key}: token {holder[1]} not above {before[key][1]}"
    assert all(h in live_ids for h, _ in after.values()), after


SLOW = "process_app.SlowCounter"
SLOW_PATH = "/t/slow/{}"


@pytest.mark.timeout(120)
def test_kill_stop_past_the_lease_late_writes_refused_late_replies_dropped(cluster: Cluster):
    """Host P owns counter x (lease TTL 2 s) and is frozen (kill -STOP) in the middle of
    a turn that sleeps before writing, with another call queued behind it and one more
    sent to it while frozen. Host Q takes x over and writes; then P continues
    (kill -CONT). P's late commit is refused by the fence and P evicts x; no reply of
    P's stale instance reaches a client as a success (all keys end acknowledged, values
    exactly 1..n, no duplicate), and the stored data is Q's history."""
    ttl = 2.0
    servers = cluster.start(2, env={"DURABLE_LEASE_TTL": str(ttl)})
    paused, other = servers
    p_id, q_id = cluster.host_id(paused), cluster.host_id(other)
    load = Load(servers, ["x"], path=SLOW_PATH)
    for _ in range(5):  # first access wins: P activates x
        assert load.increment("x", via=0, tries=1) is not None, load.failures
    x_key = cluster.object_id("x", SLOW).key
    p_holder = cluster.lease_holders()[x_key]
    assert p_holder[0] == p_id, f"x is not owned by P: {p_holder}"

    def send_to_paused(key: str, delay: float = 0.0) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: load.increment(
                "x", key, via=0, tries=1, payload={"delay": delay} if delay else None
            ),
            daemon=True,
        )
        thread.start()
        return thread

    turns_log = cluster.var / "slow_turns.jsonl"
    frozen_turn = send_to_paused("frozen-turn", delay=2.0)  # sleeps 2 s, then writes
    wait_for(turns_log.exists, 10, "the slow turn to start on P", cluster.logs)
    turn = json.loads(turns_log.read_text())
    assert turn["pid"] == paused.pid
    queued = send_to_paused("queued-behind")  # waits at P's input gate
    time.sleep(0.2)
    paused.pause()
    assert time.time() < turn["time"] + 1.8, "P froze too late: the slow turn may have ended"
    stopped = time.monotonic()
    try:
        while_paused = send_to_paused("sent-while-paused")  # sits in P's listen backlog
        load.mark_dead(0)  # the clients now go to Q only
        q_acks = []
        while len(q_acks) < 5 or time.monotonic() - stopped < 2 * ttl:
            assert time.monotonic() - stopped < 4 * ttl + 10, (
                f"Q did not take x over: {load.failures[-10:]}\n{cluster.logs()}"
            )
            ack = load.increment("x", give_up=20)
            assert ack is not None, load.failures[-10:]
            q_acks.append(ack)
        takeover = q_acks[0].acked - stopped
        q_holder = cluster.lease_holders()[x_key]
        assert q_holder[0] == q_id and q_holder[1] > p_holder[1], (p_holder, q_holder)
        assert cluster.stored_fence(cluster.object_id("x", SLOW)) == q_holder[1]
    finally:
        paused.resume()
    print(f"Q served x {takeover:.2f}s after P froze (lease TTL {ttl}s)")

    for thread in (frozen_turn, queued, while_paused):
        thread.join(40)
        assert not thread.is_alive(), "a request to the paused host hangs"
    wait_for(
        lambda: f"{x_key} refused to commit" in paused.output(),
        10,
        "P to log that its late commit was refused",
        cluster.logs,
    )
    load.mark_alive(0)
    for _ in range(5):  # P serves again, as a front: its calls go to Q
        assert load.increment("x", via=0, tries=1) is not None, load.failures[-10:]

    assert load.resolve() == []
    counts = load.check_exact()
    q_values = {a.value for a in q_acks}
    for key in ("frozen-turn", "queued-behind", "sent-while-paused"):
        assert load.acks[key].value not in q_values, f"stale reply for {key}: {load.acks[key]}"
    for server in servers:
        assert ok(server.get(SLOW_PATH.format("x")), *servers)["value"] == counts["x"]
    final_holder = cluster.lease_holders()[x_key]
    assert final_holder == q_holder, "x changed hands again after P came back"
    assert cluster.stored_fence(cluster.object_id("x", SLOW)) == q_holder[1]
    wait_for(
        lambda: cluster.registered_hosts()[p_id]["objects"] == 0,
        5,
        "P's heartbeat to report that it evicted x",
        cluster.logs,
    )
    print(f"failed attempts seen by clients: {load.failures}")


@pytest.mark.timeout(120)
def test_redis_restarted_empty_mid_run_service_resumes_tokens_grow_nothing_lost(
    cluster: Cluster,
):
    """Redis is killed and restarted empty on the same port while 6 clients increment
    10 counters through 3 hosts (default lease TTL 5 s). Service resumes by itself: every
    counter takes an increment sent after the restart within 2 x TTL. Tokens keep
    growing although Redis forgot its counters: each object's stored fence ends above
    the one stored before, and equals its new lease token. Every acknowledged increment
    is there, none twice. No host is declared dead: /healthz of every host answers 200
    with the same host id throughout, and the host registry lists the same three hosts
    beating once a heartbeat passed."""
    ttl = 5.0
    servers = cluster.start(3)
    host_ids = [cluster.host_id(s) for s in servers]
    names = [f"r{i}" for i in range(10)]
    object_ids = {name: cluster.object_id(name) for name in names}
    load = Load(servers, names, attempt_timeout=2 * ttl)
    for i, name in enumerate(names):
        assert load.increment(name, via=i % 3, tries=1) is not None, load.failures

    health_problems: list[str] = []
    watching = threading.Event()

    def watch_health() -> None:
        while not watching.is_set():
            for server, host_id in zip(servers, host_ids, strict=True):
                try:
                    body = server.get("/healthz", timeout=5)
                except OSError as exc:
                    health_problems.append(f"{server.url}: {exc}")
                    continue
                if body.status != 200 or body.body.get("host") != host_id:
                    health_problems.append(f"{server.url}: {body}")
            time.sleep(0.25)

    watcher = threading.Thread(target=watch_health, daemon=True)
    watcher.start()
    load.start(6)
    try:
        load.wait_acks(200, 30)
        fences_before = {name: cluster.stored_fence(object_ids[name]) for name in names}
        assert all(fences_before.values()), fences_before
        run_id = cluster.redis.info("server")["run_id"]

        cluster.redis_server.restart_empty()
        restarted = time.monotonic()
        assert cluster.redis.info("server")["run_id"] != run_id, "Redis did not restart"

        def served_again() -> dict[str, float]:
            firsts = {}
            for name in names:
                after = [a.acked for a in load.acks_of(name) if a.sent >= restarted]
                if after:
                    firsts[name] = min(after) - restarted
            return firsts if len(firsts) == len(names) else {}

        resumed = wait_for(
            served_again, 2 * ttl + 10, "every counter to serve after the restart", cluster.logs
        )
        time.sleep(1.0)
    finally:
        load.stop()
        watching.set()
        watcher.join(10)
    print(
        f"Redis restarted empty: first increment after {min(resumed.values()):.2f}s, "
        f"every counter served after {max(resumed.values()):.2f}s"
    )
    assert max(resumed.values()) <= 2 * ttl, resumed

    assert load.resolve() == []
    counts = load.check_exact()
    for name in names:
        for server in servers:
            assert ok(server.get(COUNTER_PATH.format(name)), *servers)["value"] == counts[name]

    holders = cluster.lease_holders()
    for name in names:
        key = object_ids[name].key
        fence = cluster.stored_fence(object_ids[name])
        assert fence > fences_before[name], f"{name}: fence {fence} after, {fences_before[name]}"
        assert key in holders and holders[key][1] == fence, (name, holders.get(key), fence)
        assert holders[key][0] in host_ids, holders[key]
        assert cluster.fence_counter(key) >= fence, (name, cluster.fence_counter(key), fence)

    assert health_problems == [], health_problems[:10]
    wait_for(
        lambda: (
            set(cluster.registered_hosts()) == set(host_ids)
            and all(h["beating"] for h in cluster.registered_hosts().values())
        ),
        5,
        "the three hosts to be registered and beating again",
        cluster.logs,
    )
    print(f"failed attempts: {load.failed_attempts}; first: {load.failures[:5]}")


def _slow_counter_owned_by(owner, front, name: str) -> str:
    """Create a slow counter on ``owner`` (first access wins) and let ``front`` learn
    its route; returns its path."""
    path = SLOW_PATH.format(name)
    assert ok(owner.post(path), owner, front)["value"] == 1
    assert ok(front.get(path), owner, front)["value"] == 1
    return path


@pytest.mark.timeout(60)
def test_a_forwarded_call_whose_ack_and_reply_were_lost_runs_once(cluster: Cluster):
    """Front A forwards an increment without Idempotency-Key (so without a caller-given
    call id) to owner B while Redis refuses B's messages to A (an ACL, standing in for
    any message loss): B runs it, but its ack and its reply are lost. Then messages
    flow again and A sends the attempt again: B must not run it twice. The counter goes
    up by one, and A answers that value."""
    front, owner = cluster.start(2)
    path = _slow_counter_owned_by(owner, front, "lost-ack")
    with ThreadPoolExecutor(max_workers=1) as pool:
        with cluster.publish_only_to(cluster.inbox(owner)):
            call = pool.submit(front.post, path, None, 15)
            wait_for(
                lambda: ok(owner.get(path), owner, front)["value"] == 2,
                5,
                "B to run the increment",
                cluster.logs,
            )
        answer = ok(call.result(20), owner, front)["value"]
    final = ok(owner.get(path), owner, front)["value"]
    assert (answer, final) == (2, 2), f"one call applied {final - 1} times, answered {answer}"


@pytest.mark.timeout(60)
def test_a_forwarded_call_whose_reply_was_lost_is_answered_before_its_deadline(
    cluster: Cluster,
):
    """Front A forwards an increment (Idempotency-Key given) to owner B; B acknowledges
    it and runs a 1 s turn, during which Redis refuses B's messages to A (an ACL): the
    reply is lost. Messages flow again 0.5 s after the turn ended. A must get
    the first result within 2 x lease TTL, not only at its call deadline (30 s)."""
    ttl = 5.0
    front, owner = cluster.start(2)
    path = _slow_counter_owned_by(owner, front, "lost-reply")
    turns_log = cluster.var / "slow_turns.jsonl"
    with ThreadPoolExecutor(max_workers=1) as pool:
        sent = time.monotonic()
        call = pool.submit(
            front.post, path, {"delay": 1.0}, 2 * ttl + 2, {"Idempotency-Key": "lost-reply"}
        )
        wait_for(turns_log.exists, 5, "the slow turn to start on B", cluster.logs)
        turn = json.loads(turns_log.read_text())
        assert turn["pid"] == owner.pid
        with cluster.publish_only_to(cluster.inbox(owner)):  # the ack went out before
            time.sleep(max(0.0, turn["time"] + 1.5 - time.time()))
        try:
            result = call.result(3 * ttl)
        except OSError as exc:
            result = exc
    waited = time.monotonic() - sent
    assert not isinstance(result, Exception), f"no answer within {waited:.1f}s: {result}"
    assert ok(result, owner, front)["value"] == 2
    assert waited <= 2 * ttl
    assert ok(owner.get(path), owner, front)["value"] == 2


@pytest.mark.timeout(60)
def test_a_host_whose_resubscription_failed_once_receives_calls_again(cluster: Cluster):
    """Host B owns counter c. Its subscriber connection is dropped and, for half a
    second, Redis refuses to let it subscribe again (an ACL allowing only A's inbox;
    a Redis that is loading or busy refuses the same way). Then Redis accepts it again:
    within 2 x lease TTL an increment of c sent through A must succeed."""
    ttl = 5.0
    front, owner = cluster.start(2)
    path = COUNTER_PATH.format("c")
    assert ok(owner.post(path), owner, front)["value"] == 1  # B owns c
    with cluster.channels_only(cluster.inbox(front)):
        time.sleep(0.5)  # B's receive loop retries every 0.2 s, and is refused
    time.sleep(1.0)
    sent = time.monotonic()
    try:
        result = front.post(path, timeout=2 * ttl)
    except OSError as exc:
        result = exc
    holder = cluster.lease_holders().get(cluster.object_id("c").key)
    assert not isinstance(result, Exception), (
        f"no answer in {time.monotonic() - sent:.1f}s; lease of c: {holder}, "
        f"B is {cluster.host_id(owner)}; subscribers of B's inbox: "
        f"{cluster.redis.pubsub_numsub(cluster.inbox(owner))}"
    )
    assert ok(result, owner, front)["value"] == 2


@pytest.mark.timeout(150)
def test_calls_in_flight_when_redis_restarts_are_answered_within_2_ttl(cluster: Cluster):
    """Redis is restarted empty twice while 12 clients increment 12 counters through 3
    hosts: every attempt, including those in flight at a restart, is answered within
    2 x lease TTL (no caller waits for its call deadline), and the counters end exact."""
    ttl = 5.0
    servers = cluster.start(3)
    names = [f"f{i}" for i in range(12)]
    load = Load(servers, names, attempt_timeout=2 * ttl + 5)
    for i, name in enumerate(names):
        assert load.increment(name, via=i % 3, tries=1) is not None, load.failures
    load.start(12)
    try:
        load.wait_acks(200, 30)
        for _ in range(2):
            cluster.redis_server.restart_empty()
            time.sleep(3.0)
    finally:
        load.stop()
    assert load.resolve() == []
    load.check_exact()
    slow = [d for d in load.durations if d[1] > 2 * ttl]
    assert not slow, (
        f"{len(slow)} attempts took over {2 * ttl}s (client timeout {2 * ttl + 5}s): "
        f"{load.slowest(10)}\nfailures: {load.failures[:10]}"
    )
