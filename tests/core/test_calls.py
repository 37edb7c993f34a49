"""Call ids (DESIGN §3.7) and the router's behaviour towards callers."""

from __future__ import annotations

import asyncio

import pytest

from durable_core.exceptions import CallTimeout, NoHostError
from durable_core.registry import get_namespace
from durable_core.testing import object_host
from tests import objects  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


async def test_retry_with_the_same_call_id_returns_the_first_result(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = get_namespace("tests.Counter").get_by_name("dedupe")
        with pytest.raises(CallTimeout) as info:
            await counter.call("slow_increment", 0.3, timeout=0.05)
        call_id = info.value.call_id
        assert call_id and info.value.retryable
        # The first attempt still runs and commits; the retry must not run again.
        again = await counter.call("slow_increment", 0.0, call_id=call_id)
        assert again == 1
        assert await counter.value() == 1
        # A fresh call id runs normally.
        assert await counter.increment() == 2


async def test_the_same_call_id_three_times_applies_once(tmp_path):
    async with object_host(tmp_path / "o"):
        counter = get_namespace("tests.Counter").get_by_name("thrice")
        results = [await counter.call("increment", 5, call_id="c-1") for _ in range(3)]
        assert results == [5, 5, 5]
        assert await counter.value() == 5


async def test_calling_without_a_host_in_embedded_mode_is_a_clear_error():
    counter = get_namespace("tests.Counter").get_by_name("nohost")
    with pytest.raises(NoHostError, match="runs no object host"):
        await counter.increment()


async def test_calls_to_many_objects_run_in_parallel(tmp_path):
    async with object_host(tmp_path / "o"):
        ns = get_namespace("tests.Stateful")
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(ns.get_by_name(f"p{i}").sleep(0.2) for i in range(20)))
        assert asyncio.get_running_loop().time() - started < 2.0
