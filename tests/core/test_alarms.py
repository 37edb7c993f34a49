"""Alarms (DESIGN §8): firing, retries with backoff, the durable index."""

from __future__ import annotations

import asyncio
import time

import pytest

from durable_core.models import ObjectRecord
from durable_core.registry import get_namespace
from durable_core.testing import evict, object_host
from tests import objects

pytestmark = pytest.mark.django_db(transaction=True)


async def wait_until(predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError("condition not reached in time")


async def index_of(stub) -> float | None:
    record = await ObjectRecord.objects.filter(object_id=stub.id.hex).afirst()
    return record.alarm_at if record else None


async def test_alarm_fires_once_and_clears_truth_and_index(tmp_path):
    async with object_host(tmp_path / "o"):
        a = get_namespace("tests.Alarmed").get_by_name("once")
        at = time.time() + 0.3
        await a.schedule(at)
        assert await a.alarm() == at
        assert await index_of(a) == at  # the index is written before the commit
        firings = await wait_until(a.firings)
        assert firings == [[0, False]]
        assert await a.alarm() is None
        await wait_until(lambda: _is_none(index_of(a)))
        await asyncio.sleep(0.3)
        assert await a.firings() == [[0, False]]


async def _is_none(coro) -> bool:
    return (await coro) is None


async def test_alarm_in_the_past_fires_at_once(tmp_path):
    async with object_host(tmp_path / "o"):
        a = get_namespace("tests.Alarmed").get_by_name("past")
        started = time.monotonic()
        await a.schedule(time.time() - 100)
        await wait_until(a.firings)
        assert time.monotonic() - started < 1.0


async def test_raising_handler_is_rolled_back_and_retried_with_backoff(tmp_path):
    objects.Alarmed.fail_times = 1
    async with object_host(tmp_path / "o"):
        a = get_namespace("tests.Alarmed").get_by_name("retry")
        await a.schedule(time.time())
        first_failure = time.monotonic()
        # The failed run's write of its firing record was rolled back, so only the
        # successful retry is recorded, with retry_count 1 ...
        firings = await wait_until(a.firings, timeout=10)
        assert firings == [[1, True]]
        # ... and it came after the first backoff step (2 s).
        assert time.monotonic() - first_failure >= 1.8
        assert await a.alarm() is None


async def test_alarm_of_an_evicted_object_is_fired_by_the_scheduler(tmp_path):
    async with object_host(tmp_path / "o", ALARM_POLL_INTERVAL=0.1) as host:
        a = get_namespace("tests.Alarmed").get_by_name("asleep")
        await a.schedule(time.time() + 0.5)
        assert await evict(a)
        assert a.id.key not in host.active

        async def fired() -> bool:
            return host.alarms.fired > 0

        await wait_until(fired)
        assert await a.firings() == [[0, False]]


async def test_alarm_survives_a_host_restart(tmp_path):
    async with object_host(tmp_path / "o"):
        a = get_namespace("tests.Alarmed").get_by_name("restart")
        await a.schedule(time.time() + 0.5)
    # Nobody calls the object after the restart: the scheduler must wake it.
    async with object_host(tmp_path / "o", ALARM_POLL_INTERVAL=0.1) as host:

        async def fired() -> bool:
            return host.alarms.fired > 0

        await wait_until(fired)
        assert await a.firings() == [[0, False]]


async def test_set_alarm_rejects_bad_times(tmp_path):
    from durable_core.exceptions import InvalidArgument

    async with object_host(tmp_path / "o"):
        a = get_namespace("tests.Alarmed").get_by_name("bad")
        with pytest.raises(InvalidArgument, match="alarm time"):
            await a.schedule("tomorrow")
        assert await a.alarm() is None
