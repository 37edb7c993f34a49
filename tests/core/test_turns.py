"""Turn semantics (DESIGN §6): input gate, output gate, atomic turns, gate opening."""

from __future__ import annotations

import asyncio
import time

import pytest

from durable_core.exceptions import (
    InvalidArgument,
    MethodNotFound,
    ObjectOverloaded,
    RemoteObjectError,
    StorageError,
    TurnTimeout,
)
from durable_core.registry import get_namespace
from durable_core.testing import evict, get_instance, object_host
from tests import objects

pytestmark = pytest.mark.django_db(transaction=True)


def stub(namespace: str, name: str):
    return get_namespace(namespace).get_by_name(name)


async def test_200_concurrent_increments_end_at_exactly_200(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "c")
        results = await asyncio.gather(*(counter.increment() for _ in range(200)))
        assert sorted(results) == list(range(1, 201))
        assert await counter.value() == 200


async def test_input_gate_serialises_a_turn_that_awaits_without_opening(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "slow")
        # Each turn reads, sleeps, writes: any interleaving would lose increments.
        results = await asyncio.gather(*(counter.slow_increment(0.01) for _ in range(10)))
        assert sorted(results) == list(range(1, 11))


async def test_a_failing_turn_leaves_no_writes_and_others_in_its_batch_commit(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "f")
        ops = [counter.increment(), counter.fail_after_write(), counter.increment()]
        results = await asyncio.gather(*ops, return_exceptions=True)
        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], RemoteObjectError)
        assert results[1].remote_type == "ValueError" and "boom" in str(results[1])
        assert await counter.value() == 2


async def test_failed_turn_resets_the_instance_from_storage(tmp_path):
    objects.Stateful.starts = 0
    async with object_host(tmp_path / "o"):
        s = stub("tests.Stateful", "s")
        assert await s.cached() == 0
        with pytest.raises(RemoteObjectError):
            await s.bump_memory_then_fail()
        assert await s.cached() == 0  # the +100 in memory did not survive the reset
        assert objects.Stateful.starts == 2


async def test_results_and_arguments_are_copied_as_json(tmp_path):
    async with object_host(tmp_path / "o"):
        s = stub("tests.Stateful", "j")
        value = {"a": [1, 2, {"b": None}], "t": (1, 2)}
        assert await s.echo(value) == {"a": [1, 2, {"b": None}], "t": [1, 2]}
        with pytest.raises(InvalidArgument):
            await s.echo({1, 2})
        with pytest.raises(InvalidArgument):
            await s.give_unencodable()
        with pytest.raises(InvalidArgument):
            await s.echo(1, 2, 3)  # wrong signature is the caller's error


async def test_unknown_and_private_methods_are_refused(tmp_path):
    async with object_host(tmp_path / "o"):
        s = stub("tests.Stateful", "m")
        with pytest.raises(MethodNotFound):
            await s.nope()
        with pytest.raises(MethodNotFound):
            s._secret  # noqa: B018
        with pytest.raises(MethodNotFound):
            await s.on_start()


async def test_a_to_b_to_a_call_cycle_completes(tmp_path):
    async with object_host(tmp_path / "o"):
        a = stub("tests.Chain", "a")
        reply = await asyncio.wait_for(a.ping("b", "a"), 10)
        assert reply == "a>b>a"


async def test_crossing_chains_do_not_deadlock(tmp_path):
    async with object_host(tmp_path / "o"):
        a, b = stub("tests.Chain", "x"), stub("tests.Chain", "y")
        replies = await asyncio.wait_for(asyncio.gather(a.cross("y", 0.05), b.cross("x", 0.05)), 10)
        assert replies == ["x>y", "y>x"]


async def test_open_gate_lets_other_events_run_and_commits_the_first_segment(tmp_path):
    async with object_host(tmp_path / "o"):
        g = stub("tests.Gated", "g")
        slow = asyncio.create_task(g.wait_outside(0.5))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        assert await g.quick() == 1  # ran while the gate was open, saw the first segment
        assert time.monotonic() - started < 0.3
        assert await slow == 1


async def test_writing_while_the_gate_is_open_is_refused(tmp_path):
    async with object_host(tmp_path / "o"):
        g = stub("tests.Gated", "w")
        with pytest.raises(StorageError):
            await g.write_inside_open_gate()


async def test_full_mailbox_fails_fast_with_object_overloaded(tmp_path):
    async with object_host(tmp_path / "o", MAILBOX_SIZE=5):
        s = stub("tests.Stateful", "busy")
        await s.echo(1)  # activate
        blocker = asyncio.create_task(s.sleep(0.3))
        await asyncio.sleep(0.05)
        waiting = [asyncio.create_task(s.echo(i)) for i in range(5)]
        await asyncio.sleep(0.05)
        with pytest.raises(ObjectOverloaded) as info:
            await s.echo("one too many")
        assert info.value.overloaded and info.value.retryable
        assert await asyncio.gather(*waiting) == list(range(5))
        await blocker


async def test_turn_time_limit_rolls_back_and_resets(tmp_path):
    async with object_host(tmp_path / "o", TURN_TIMEOUT=0.2):
        s = stub("tests.Stateful", "t")
        with pytest.raises(TurnTimeout):
            await s.sleep(5)
        assert await s.echo("alive") == "alive"


async def test_evicted_object_reactivates_with_its_data_and_a_higher_token(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "e")
        await counter.increment(by=5)
        first = await counter.token()
        assert await evict(counter)
        assert get_instance(counter) is None
        assert await counter.value() == 5
        assert await counter.token() > first


async def test_idle_objects_are_evicted(tmp_path):
    async with object_host(tmp_path / "o", IDLE_TIMEOUT=0.2) as host:
        counter = stub("tests.Counter", "idle")
        await counter.increment()
        assert counter.id.key in host.active
        for _ in range(100):
            if counter.id.key not in host.active:
                break
            await asyncio.sleep(0.05)
        assert counter.id.key not in host.active
        assert await counter.increment() == 2


async def test_data_survives_a_host_restart(tmp_path):
    async with object_host(tmp_path / "o"):
        await stub("tests.Counter", "r").increment(by=7)
    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "r")
        assert await counter.value() == 7
        # The in-process lease store restarted from zero; the token still grew past
        # the fence stored in the file.
        assert await counter.token() >= 2


async def test_calls_during_eviction_wait_and_are_routed_afresh(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "ev")
        await counter.increment()
        host_active = get_instance(counter)
        assert host_active is not None
        eviction = asyncio.ensure_future(evict(counter))
        results = await asyncio.gather(*(counter.increment() for _ in range(20)))
        await eviction
        assert sorted(results) == list(range(2, 22))


async def test_on_start_failure_fails_activation_and_the_next_call_retries(tmp_path):
    objects.Starter.failures_left = 1
    async with object_host(tmp_path / "o"):
        s = stub("tests.Starter", "s")
        with pytest.raises(RemoteObjectError):
            await s.hello()
        assert await s.hello() == "hi"


async def test_reading_a_never_written_object_creates_no_file(tmp_path):
    async with object_host(tmp_path / "o"):
        assert await stub("tests.Counter", "ghost").value() == 0
    assert not list((tmp_path / "o").glob("tests.Counter/*/*.sqlite3"))


async def test_destroy_removes_file_and_keeps_the_fence_floor(tmp_path):
    from durable_core.models import ObjectRecord

    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "doomed")
        await counter.increment(by=3)
        old_token = await counter.token()
        files = list((tmp_path / "o").glob("tests.Counter/*/*.sqlite3"))
        assert len(files) == 1
        await counter.destroy_me()
        for _ in range(100):
            if not files[0].exists():
                break
            await asyncio.sleep(0.02)
        assert not files[0].exists()
        record = await ObjectRecord.objects.aget(object_id=counter.id.hex)
        assert record.deleted and record.fence_floor >= old_token
        # Recreated from nothing, with a token above everything the old one used.
        assert await counter.increment() == 1
        assert await counter.token() > old_token
        record = await ObjectRecord.objects.aget(object_id=counter.id.hex)
        assert not record.deleted


async def test_abort_commits_the_turn_then_starts_a_fresh_instance(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = stub("tests.Counter", "abort")
        await counter.increment()
        first = get_instance(counter)
        assert await counter.abort_me() == 1
        assert await counter.increment() == 2
        assert get_instance(counter) is not first


async def test_open_stores_are_capped_while_objects_stay_active(tmp_path):
    async with object_host(tmp_path / "o", MAX_OPEN_STORES=3) as host:
        counters = [stub("tests.Counter", f"cap{i}") for i in range(10)]
        for round_ in range(1, 3):
            for counter in counters:
                assert await counter.increment() == round_
            assert len(host.stores) <= 3
        assert len(host.active) == 10  # activity is independent of open file handles
        assert [await c.value() for c in counters] == [2] * 10


async def test_an_object_activated_from_inside_another_turn_may_write_in_on_start(tmp_path):
    """B is activated by A's call while A's gate is open; B's on_start writes its
    schema: the open gate is A's, not B's, so B's writes are allowed."""

    async with object_host(tmp_path / "o"):
        caller = stub("tests.Chain", "activator")
        assert await caller.call_other("tests.Migrating", "fresh") == "pong"


@pytest.mark.django_db(transaction=True)
async def test_a_reader_whose_file_was_made_by_another_holder_of_its_token_does_not_answer(
    tmp_path,
):
    """An activation that found no file answers reads from memory (this object reads
    its storage only in on_start); once another holder of the same token (a lease store
    that lost its counter) has made the file, the output gate's fence check refuses that
    stale answer and the retry reads the file."""
    from durable_core.storage import ObjectStorage
    from durable_core.storage.database import ObjectDatabase
    from tests.core.storage_helpers import turn

    async with object_host(tmp_path / "o") as host:
        counter = get_namespace("tests.CachedCounter").get_by_name("same-token")
        assert await counter.value() == 0  # active, no file yet
        active = host.active[counter.id.key]
        other = ObjectDatabase(active.db.path, active.lease.token)
        try:
            with turn(other):
                ObjectStorage(other).put("n", 5)
        finally:
            other.close()
        assert await counter.value() == 5
        assert host.active[counter.id.key] is not active, "the stale activation kept serving"
