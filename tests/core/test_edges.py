"""The turn machinery at its edges (issue 15): destroy, drain, time limits, gates, and
errors in the runtime's own bookkeeping never break a guarantee.

One test per finding of the review, each driving the real embedded runtime; each
failed on the code before the fix (see the closing note of issue 15).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import time

import pytest

from durable_core import records
from durable_core.consumers import DurableObjectConsumer
from durable_core.events import Event
from durable_core.exceptions import (
    CallTimeout,
    DurableError,
    HostUnavailable,
    NotOwner,
    PartiallyApplied,
    RemoteObjectError,
    StorageError,
    TurnTimeout,
)
from durable_core.host import ObjectHost
from durable_core.leases.local import LocalLeaseStore
from durable_core.models import ObjectRecord
from durable_core.registry import get_namespace
from durable_core.router import Router, get_router
from durable_core.storage import ObjectStorage
from durable_core.storage.database import ObjectDatabase
from durable_core.storage.files import object_path
from durable_core.testing import evict, object_host
from durable_core.turns import ActiveObject
from tests import objects
from tests.core.test_websockets import connect
from tests.core.transport_helpers import RecordingTransport, call_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def edgy(name: str):
    return get_namespace("tests.Edgy").get_by_name(name)


def path_of(host: ObjectHost, stub) -> object:
    return object_path(host.storage_dir, stub.id.namespace, stub.id.hex)


async def newer_owner_writes(path, token: int, key: str, value: object) -> None:
    """Another owner, with ``token``, claims the file and commits ``key``."""
    db = ObjectDatabase(path, token=token)
    try:
        if path.exists():
            await db.activate()
        db.begin_turn()
        ObjectStorage(db).put(key, value)
        db.end_turn(ok=True)
        db.commit()
    finally:
        db.close()


def stored(path, key: str) -> object:
    db = ObjectDatabase(path, token=0)
    try:
        return ObjectStorage(db).get(key)
    finally:
        db.close()


# -- 1. destroy -------------------------------------------------------------------


async def test_a_stale_owners_destroy_leaves_the_new_owners_file(tmp_path):
    async with object_host(tmp_path / "o") as host:
        stub = edgy("stale-destroy")
        await stub.put("mine", 1)
        path = path_of(host, stub)
        token = host.active[stub.id.key].lease.token
        # Another host took the lease over (this one has not noticed) and wrote.
        host.lease_store._leases[stub.id.key] = ("other-host", token + 1, time.monotonic() + 60)
        await newer_owner_writes(path, token + 1, "theirs", 2)
        with pytest.raises(DurableError):
            await get_router().call(stub.id, "destroy_me", [], {}, timeout=1)
        assert path.exists(), "the stale owner removed the new owner's file"
        assert stored(path, "theirs") == 2
        record = await ObjectRecord.objects.aget(object_id=stub.id.hex)
        assert not record.deleted


async def test_a_turn_that_raises_after_destroy_destroys_nothing(tmp_path):
    async with object_host(tmp_path / "o") as host:
        stub = edgy("regret")
        await stub.put("k", "v")
        with pytest.raises(RemoteObjectError):
            await stub.destroy_then_fail()
        assert path_of(host, stub).exists()
        assert await stub.get("k") == "v"


async def test_destroy_removes_the_file_and_marks_the_record_at_once(tmp_path):
    async with object_host(tmp_path / "o") as host:
        stub = edgy("gone")
        await stub.put("k", "v")
        token = host.active[stub.id.key].lease.token
        await stub.destroy_me()
        assert not path_of(host, stub).exists()
        record = await ObjectRecord.objects.aget(object_id=stub.id.hex)
        assert record.deleted and record.fence_floor >= token
        assert await stub.get("k") is None  # a fresh object under the same ID


async def test_a_tombstoned_file_left_behind_is_finished_off_by_the_next_owner(tmp_path):
    async with object_host(tmp_path / "o") as host:
        stub = edgy("tomb")
        await stub.put("k", "v")
        active = host.active[stub.id.key]
        path = path_of(host, stub)
        # The destroy commits its tombstone, then its lease lapses before the removal.
        original = active._finish_destroy

        async def lapse_then_finish(tombstoned: bool) -> None:
            active.lease.deadline = 0.0
            await original(tombstoned)

        active._finish_destroy = lapse_then_finish
        await stub.destroy_me()
        assert path.exists()  # left for the next owner
        assert await stub.get("k") is None  # the next owner never serves the dead data
        await stub.put("k2", 1)
        assert stored(path, "k") is None and stored(path, "k2") == 1


# -- 2. drain -----------------------------------------------------------------------


async def test_drain_of_a_host_whose_leases_lapse_never_freezes_the_loop(tmp_path):
    async with object_host(tmp_path / "o", LEASE_TTL=1.0) as host:
        stub = edgy("drain")
        loop = asyncio.get_running_loop()
        events = []
        for i in range(60):
            payload = json.dumps([[f"k{i}", 0.05], {}])
            event = Event("call", loop.create_future(), "write_then_sleep", payload, f"c{i}")
            await host.deliver(stub.id, event)
            events.append(event)
        await asyncio.sleep(0.2)
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.05)

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        await asyncio.wait_for(host.stop(), 6)
        elapsed = time.monotonic() - started
        tick.cancel()
    assert elapsed < host.settings.lease_ttl + 2
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps, default=0) < 0.5, "the event loop stalled during the drain"
    for event in events:
        status, body = event.future.result()  # every call was answered
        assert status == "ok" or body["retryable"], body


# -- 3. a time limit while re-entering the gate ----------------------------------------


async def test_a_turn_timing_out_at_the_gate_leaves_the_gate_holders_turn_alone(tmp_path):
    async with object_host(tmp_path / "o", TURN_TIMEOUT=0.5):
        stub = edgy("timeout-gate")
        t1 = asyncio.create_task(stub.hold(0.3, 0.01))
        await asyncio.sleep(0.05)
        t2 = asyncio.create_task(stub.write_then_sleep("t2", 0.4))
        with pytest.raises(TurnTimeout):
            await t1
        assert await t2 == "t2"
        assert await stub.get("t2") is True, "the gate holder's acknowledged write was lost"


# -- 4. a failed commit at an open gate -------------------------------------------------


async def test_a_failed_commit_at_an_open_gate_fails_the_turn(tmp_path, monkeypatch):
    async def fails(self, active, **kwargs):
        raise RuntimeError("the Django database went away")

    async with object_host(tmp_path / "o") as host:
        stub = edgy("gate-fails")
        await stub.put("x", 0)
        monkeypatch.setattr(ObjectHost, "before_commit", fails)
        with pytest.raises(DurableError) as raised:
            await get_router().call(stub.id, "write_then_open_gate", ["lost", 0.0], {}, timeout=0.5)
        assert raised.value.retryable  # nothing of it committed: the caller may retry
        assert stored(path_of(host, stub), "lost") is None


# -- 5. call ids across gates, and nested calls ----------------------------------------


async def test_a_call_that_wrote_before_awaiting_another_object_is_not_run_twice(tmp_path):
    async with object_host(tmp_path / "o"):
        stub = edgy("rec")
        router = get_router()
        first = await router.call(stub.id, "write_then_call", ["c5"], {}, call_id="same")
        again = await router.call(stub.id, "write_then_call", ["c5"], {}, call_id="same")
        assert first == again == 1
        assert await stub.get("calls") == 1


async def test_a_retried_turn_re_sends_its_calls_under_the_same_ids(tmp_path):
    async with object_host(tmp_path / "o"):
        stub = edgy("nested")
        router = get_router()
        for _ in range(2):
            with pytest.raises(RemoteObjectError):
                await router.call(stub.id, "call_then_fail", ["c5n"], {}, call_id="retry-me")
        assert await get_namespace("tests.Counter").get_by_name("c5n").value() == 1


async def test_a_call_that_failed_after_committing_at_a_gate_is_never_run_again(tmp_path):
    """Found by the simulation: a turn that wrote, committed at a gate and then failed
    with a retryable error was retried by the router and applied twice."""
    async with object_host(tmp_path / "o"):
        stub = edgy("partial")
        router = get_router()
        for _ in range(2):
            with pytest.raises(PartiallyApplied):
                await router.call(stub.id, "count_gate_then_fail", [True], {}, call_id="p-1")
        assert await stub.get("counted") == 1


# -- 6. errors in the runtime's bookkeeping --------------------------------------------


async def test_a_failure_recording_the_call_id_fails_the_turn_not_the_object(tmp_path, monkeypatch):
    def disk_full(self, call_id, reply):
        raise sqlite3.OperationalError("database or disk is full")

    async with object_host(tmp_path / "o"):
        stub = edgy("full")
        monkeypatch.setattr(ActiveObject, "_record_call", disk_full)
        with pytest.raises(DurableError):
            await asyncio.wait_for(get_router().call(stub.id, "bump", [], {}, timeout=2), 5)
        monkeypatch.undo()
        assert await asyncio.wait_for(stub.bump(), 5) == 1  # the object still serves


async def test_an_alarm_index_failure_after_commit_still_releases_the_replies(
    tmp_path, monkeypatch
):
    async def broken(self, active, alarm):
        raise RuntimeError("the Django database went away")

    async with object_host(tmp_path / "o"):
        stub = get_namespace("tests.Alarmed").get_by_name("idx")
        monkeypatch.setattr(ObjectHost, "after_alarm_commit", broken)
        await asyncio.wait_for(stub.schedule(time.time() + 3600), 5)
        assert await asyncio.wait_for(stub.alarm(), 5) is not None


async def test_a_failed_alarm_run_has_its_retry_committed_before_it_ran(tmp_path):
    async with object_host(tmp_path / "o") as host:
        stub = get_namespace("tests.Alarmed").get_by_name("retry")
        objects.Alarmed.fail_times = 1
        try:
            await stub.schedule(time.time())
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                active = host.active.get(stub.id.key)
                if active is not None and active.db.get_meta("alarm_retry") == 1:
                    break
                await asyncio.sleep(0.05)
            assert active is not None and active.db.get_meta("alarm_retry") == 1
            assert await stub.alarm() > time.time() + 1  # backing off, from 2 s
        finally:
            objects.Alarmed.fail_times = 0


# -- 7. activations that end while starting ---------------------------------------------


async def test_a_cancelled_first_activator_does_not_cancel_the_others(tmp_path):
    async with object_host(tmp_path / "o"):
        objects.Starter.delay = 0.3
        try:
            stub = get_namespace("tests.Starter").get_by_name("slow")
            first = asyncio.create_task(stub.hello())
            await asyncio.sleep(0.05)
            second = asyncio.create_task(stub.hello())
            await asyncio.sleep(0.05)
            first.cancel()
            assert await asyncio.wait_for(second, 5) == "hi"
        finally:
            objects.Starter.delay = 0.0


async def test_an_activation_failing_at_start_leaves_no_lease_and_no_active_entry(
    tmp_path, monkeypatch
):
    async def front_check_fails(self, front):
        raise ConnectionError("registry unreachable")

    async with object_host(tmp_path / "o") as host:
        stub = edgy("start-fails")
        await connect(stub, "ws1", "gone-front")
        await evict(stub)
        monkeypatch.setattr(ObjectHost, "is_front_dead", front_check_fails)
        assert await asyncio.wait_for(stub.bump(), 5) == 1  # a registry error is no failure
        monkeypatch.undo()
        active = host.active[stub.id.key]
        assert not active.closing


# -- 8. renewal judges only its own snapshot ---------------------------------------------


async def test_objects_activated_during_a_renewal_are_not_evicted_as_lost(tmp_path, monkeypatch):
    evictions = []
    original_evict = ActiveObject.evict

    def recording_evict(self, reason, error=None):
        evictions.append(reason)
        return original_evict(self, reason, error)

    monkeypatch.setattr(ActiveObject, "evict", recording_evict)
    original_renew = LocalLeaseStore.renew

    async def slow_renew(self, leases):
        await asyncio.sleep(0.3)  # a slow round trip, far inside the lease
        return await original_renew(self, leases)

    monkeypatch.setattr(LocalLeaseStore, "renew", slow_renew)
    # TTL 3 s (renewal every 1 s): no lease can really lapse, even on a loaded machine.
    async with object_host(tmp_path / "o", LEASE_TTL=3.0):
        for i in range(40):
            await edgy(f"renew-{i}").bump()
            await asyncio.sleep(0.08)
        assert "lease lost" not in evictions


# -- 9. claims and take-overs ------------------------------------------------------------


async def test_a_first_write_never_claims_a_file_another_owner_made_meanwhile(tmp_path):
    async with object_host(tmp_path / "o") as host:
        stub = edgy("claim")
        await host.lease_store.raise_fence(stub.id.key, 10)
        assert await stub.get("n") is None  # activated with token 11, no file yet
        await newer_owner_writes(path_of(host, stub), 10, "n", 5)  # an older owner's write
        assert await stub.bump() == 6, "the older owner's acknowledged write was overwritten"


async def test_a_read_only_answer_checks_the_fence_after_the_store_cap_closed_it(tmp_path):
    async with object_host(tmp_path / "o", MAX_OPEN_STORES=1) as host:
        stub, other = edgy("lru-a"), edgy("lru-b")
        await stub.bump()
        active = host.active[stub.id.key]
        await other.bump()  # the cap of one closes the first store
        assert active.db.conn is None
        token = active.lease.token
        host.lease_store._leases[stub.id.key] = ("other-host", token + 1, time.monotonic() + 60)
        await newer_owner_writes(path_of(host, stub), token + 1, "n", 5)
        with pytest.raises(DurableError):  # not the stale 1 from memory
            await get_router().call(stub.id, "cached", [], {}, timeout=0.5)


async def test_a_lapsed_heartbeat_is_no_proof_of_death(tmp_path):
    class Registry:
        async def is_dead(self, host_id):
            return True  # its heartbeat lapsed

        async def is_proven_dead(self, host_id):
            return False  # but its process may be paused, not gone

    store = LocalLeaseStore(5.0)
    host = ObjectHost(store, lock_storage_dir=False)
    host.registry = Registry()
    stub = edgy("held")
    await store.acquire(stub.id.key, "elsewhere:4242:cafe")
    with pytest.raises(NotOwner):
        await host._activate_new(stub.id)
    host.db_thread.close()


# -- 10. closed is set whatever the closing bookkeeping raises ------------------------------


async def test_an_eviction_whose_release_fails_still_closes(tmp_path, monkeypatch):
    async def release_fails(self, active):
        raise ConnectionError("Redis is down")

    async with object_host(tmp_path / "o") as host:
        stub = edgy("close")
        await stub.bump()
        active = host.active[stub.id.key]
        monkeypatch.setattr(ObjectHost, "object_closed", release_fails)
        await asyncio.wait_for(asyncio.shield(active.evict("test")), 5)
        assert active.closed.is_set()
        monkeypatch.undo()
        assert await asyncio.wait_for(stub.bump(), 5) == 2


# -- 11. the record is made even when the first commit failed ---------------------------------


async def test_an_object_whose_first_commit_failed_still_gets_its_record(tmp_path, monkeypatch):
    async def record_fails(object_id, token):
        raise RuntimeError("the Django database went away")

    async with object_host(tmp_path / "o"):
        stub = edgy("record")
        monkeypatch.setattr(records, "aensure_record", record_fails)
        with pytest.raises(DurableError):
            await get_router().call(stub.id, "bump", [], {}, timeout=0.5)
        await evict(stub)
        monkeypatch.undo()
        assert await stub.bump() == 1
        assert await ObjectRecord.objects.filter(object_id=stub.id.hex).aexists()


# -- 12. no ghost sockets ------------------------------------------------------------------


class SocketsConsumer(DurableObjectConsumer):
    def get_object_stub(self):
        return get_namespace("tests.Sockets").get_by_name(self.scope["url_route"]["kwargs"]["name"])


def sockets_app():
    from channels.routing import URLRouter
    from django.urls import path

    return URLRouter([path("ws/<str:name>/", SocketsConsumer.as_asgi())])


async def roster_empties(stub, seconds: float = 5.0) -> list:
    deadline = time.monotonic() + seconds
    while True:
        sockets = (await stub.state())["sockets"]
        if not sockets or time.monotonic() > deadline:
            return sockets
        await asyncio.sleep(0.05)


async def test_a_connect_whose_reply_was_lost_leaves_no_ghost(tmp_path, monkeypatch):
    from channels.testing import WebsocketCommunicator

    original = Router.send_event

    async def reply_lost(self, object_id, method, payload, **kwargs):
        result = await original(self, object_id, method, payload, **kwargs)
        if method == "connect":
            raise CallTimeout("the reply of the connect was lost")
        return result

    async with object_host(tmp_path / "o"):
        monkeypatch.setattr(Router, "send_event", reply_lost)
        client = WebsocketCommunicator(sockets_app(), "/ws/ghost/")
        connected, _code = await client.connect(timeout=5)
        assert not connected
        monkeypatch.undo()
        stub = get_namespace("tests.Sockets").get_by_name("ghost")
        assert await roster_empties(stub) == []


async def test_a_close_that_could_not_be_delivered_is_retried(tmp_path, monkeypatch):
    from channels.testing import WebsocketCommunicator

    original = Router.send_event
    failures = []

    async def close_fails_once(self, object_id, method, payload, **kwargs):
        if method == "close" and not failures:
            failures.append(1)
            raise HostUnavailable("the owner is moving")
        return await original(self, object_id, method, payload, **kwargs)

    async with object_host(tmp_path / "o"):
        stub = get_namespace("tests.Sockets").get_by_name("retry-close")
        client = WebsocketCommunicator(sockets_app(), "/ws/retry-close/")
        connected, _code = await client.connect(timeout=5)
        assert connected
        assert len((await stub.state())["sockets"]) == 1
        monkeypatch.setattr(Router, "send_event", close_fails_once)
        await client.disconnect()
        assert await roster_empties(stub) == []
        assert failures


async def test_a_close_handler_that_awaited_another_object_then_raised_closes_cleanly(tmp_path):
    """Seen live: "no such savepoint: _do_user_2" when a device's close handler had
    called another object (its gate committed the handler's savepoint) and then raised."""
    async with object_host(tmp_path / "o"):
        stub = edgy("close-gate")
        await connect(stub, "w9", "front-a")
        close = json.dumps({"ws": "w9", "code": 1000, "reason": "", "clean": True})
        assert await get_router().send_event(stub.id, "close", close, lifecycle=True) == {}
        assert await stub.get("closed") == "w9"  # committed at the gate: kept
        counter = get_namespace("tests.Counter").get_by_name("closes-w9")
        assert await counter.value() == 1


async def test_awaiting_another_object_inside_a_transaction_is_a_clear_error(tmp_path):
    async with object_host(tmp_path / "o"):
        stub = edgy("tx")
        with pytest.raises(StorageError, match=r"storage\.transaction"):
            await stub.await_inside_transaction()
        assert await stub.get("half") is None


# -- 13. the call-id table stays bounded ------------------------------------------------------


async def test_call_ids_are_pruned_however_short_the_activations(tmp_path):
    async with object_host(tmp_path / "o", CALL_ID_WINDOW=10) as host:
        stub = edgy("prune")
        for _ in range(40):
            await stub.bump()
            await evict(stub)
        await stub.bump()
        rows = host.active[stub.id.key].db.conn.execute("SELECT count(*) FROM _do_calls")
        assert rows.fetchone()[0] <= 11


# -- 14. WebSocket events are applied once ------------------------------------------------


async def test_a_retried_websocket_message_is_applied_once(tmp_path):
    async with object_host(tmp_path / "o"):
        stub = edgy("ws")
        await connect(stub, "w1", "front-a")
        body = json.dumps({"ws": "w1", "text": "hi"})
        router = get_router()
        for _ in range(2):
            await router._send(stub.id, "ws", "message", body, None, call_id="m-1")
        assert await stub.get("messages") == 1


# -- 16. idempotency keys are scoped to their object -------------------------------------------


async def test_the_same_call_id_sent_to_two_objects_runs_on_both(tmp_path):

    async with object_host(tmp_path / "o") as host:
        host.transport = transport = RecordingTransport()
        router = get_router()
        for name in ("one", "two"):
            stub = get_namespace("tests.Counter").get_by_name(f"idem-{name}")
            await router.handle_message(call_message(stub, "increment", "key-1"))
        deadline = time.monotonic() + 5
        while len(transport.sent) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [m["status"] for m in transport.sent] == ["ok", "ok"]
        assert await get_namespace("tests.Counter").get_by_name("idem-two").value() == 1


async def test_active_objects_per_host_are_capped_least_recently_used_first(tmp_path):
    """Issue 16, finding 9: anonymous clients creating objects cannot fill a host's
    memory: beyond MAX_ACTIVE_OBJECTS the least recently used idle ones are evicted."""
    async with object_host(tmp_path / "o", MAX_ACTIVE_OBJECTS=5) as host:
        stubs = [edgy(f"cap-{i}") for i in range(12)]
        for stub in stubs:
            await stub.bump()
        await asyncio.sleep(0.05)  # evictions finish
        assert len(host.active) <= 5
        assert stubs[-1].id.key in host.active  # the most recent stays
        assert stubs[0].id.key not in host.active
        assert await stubs[0].bump() == 2  # an evicted one loses nothing


async def test_hosts_purge_the_records_of_deleted_objects_keeping_the_fence(tmp_path, monkeypatch):
    from durable_core import host as host_module

    monkeypatch.setattr(host_module, "PURGE_INTERVAL", 0.1)
    async with object_host(tmp_path / "o", IDLE_TIMEOUT=0.2, DELETED_RECORD_RETENTION=0.05):
        stub = edgy("purged")
        await stub.bump()
        await stub.destroy_me()
        deadline = time.monotonic() + 5
        while await ObjectRecord.objects.filter(object_id=stub.id.hex).aexists():
            assert time.monotonic() < deadline, "the deleted object's record was never purged"
            await asyncio.sleep(0.05)
        assert await records.aget_fence_floor(stub.id) >= 1  # the fence outlives the record
        assert await stub.bump() == 1


async def test_an_activation_under_way_when_the_host_stops_is_drained_too(tmp_path):
    """Found by the simulation (seed 1140): an object whose activation finished after
    the drain took its list outlived the host, its dispatcher running, its lease held."""
    objects.Starter.delay = 0.3
    try:
        cm = object_host(tmp_path / "o")
        host = await cm.__aenter__()
        stub = get_namespace("tests.Starter").get_by_name("late")
        call = asyncio.create_task(stub.hello())
        await asyncio.sleep(0.1)  # on_start is running
        await cm.__aexit__(None, None, None)
        await asyncio.gather(call, return_exceptions=True)
        left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("durable:")]
        assert left == []
        assert await host.lease_store.get_holder(stub.id.key) is None
    finally:
        objects.Starter.delay = 0.0


async def test_a_native_panic_in_a_turn_is_a_failed_turn_not_a_dead_object(tmp_path):
    """Issue 16, finding 13: pyo3's PanicException (from pycrdt) derives from
    BaseException; it used to kill the object's dispatcher for good."""
    async with object_host(tmp_path / "o"):
        stub = edgy("panic")
        with pytest.raises(RemoteObjectError, match="PanicException"):
            await asyncio.wait_for(stub.panic(), 5)
        assert await asyncio.wait_for(stub.get("panicked"), 5) is None  # rolled back
        assert await asyncio.wait_for(stub.bump(), 5) == 1  # and the object still serves
