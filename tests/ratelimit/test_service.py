"""The limiter's Python API (apps/ratelimit/service.py) against the real embedded runtime."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.test import override_settings

from apps.ratelimit import objects as limiter_objects
from apps.ratelimit.service import (
    InvalidCost,
    InvalidKey,
    UnknownPolicy,
    consume,
    get_policy,
    object_name,
    peek,
)
from durable_core.registry import get_namespace
from durable_core.testing import evict, object_host

pytestmark = pytest.mark.django_db(transaction=True)

POLICIES = {
    "t5": {"limit": 5, "period": 10},
    "t3": {"limit": 3, "period": 1},
    "short": {"limit": 2, "period": 0.3},
}


@pytest.fixture(autouse=True)
def policies():
    with override_settings(RATELIMIT_POLICIES=POLICIES):
        yield


@pytest.fixture
def clock(monkeypatch):
    """Pins the limiter's decision clock; ``clock[0] = t`` moves it."""
    now = [1_700_000_000.0]
    monkeypatch.setattr(limiter_objects, "_now", lambda: now[0])
    return now


def object_file(storage, policy, key):
    object_id = get_namespace("ratelimit.Limiter").id_from_name(object_name(policy, key))
    return storage / "ratelimit.Limiter" / object_id.hex[:2] / f"{object_id.hex}.sqlite3"


def test_get_policy_reads_settings_at_call_time():
    assert get_policy("t5").limit == 5 and get_policy("t5").period == 10.0
    assert get_policy("nope") is None
    with override_settings(RATELIMIT_POLICIES={"x": {"limit": 7, "period": 2}}):
        assert get_policy("x").limit == 7
        assert get_policy("t5") is None
    bad = {"bad": {"limit": 0, "period": 2}}
    with override_settings(RATELIMIT_POLICIES=bad), pytest.raises(ValueError):
        get_policy("bad")


async def test_consume_admits_up_to_the_limit_then_refuses(tmp_path, clock):
    async with object_host(tmp_path / "o"):
        got = [await consume("t5", "ann") for _ in range(6)]
        assert [d.allowed for d in got] == [True] * 5 + [False]
        assert [d.remaining for d in got] == [4, 3, 2, 1, 0, 0]
        first, refused = got[0], got[-1]
        assert first.limit == 5 and first.policy == "t5" and first.period == 10.0
        assert first.retry_after == 0 and first.reset_after == pytest.approx(10.0)
        assert first.at == clock[0]
        assert refused.retry_after == pytest.approx(10.0)
        # Keys are independent.
        assert (await consume("t5", "bob")).remaining == 4


async def test_cost_is_spent_whole_and_remaining_drops_by_it(tmp_path, clock):
    async with object_host(tmp_path / "o"):
        assert (await consume("t5", "k", cost=3)).remaining == 2
        refused = await consume("t5", "k", cost=3)
        assert not refused.allowed and refused.remaining == 2
        assert (await consume("t5", "k", cost=2)).remaining == 0


async def test_every_window_of_period_is_checked_not_only_aligned_ones(tmp_path, clock):
    """A burst at the end of one 'window' and at the start of the next is still one window."""
    start = clock[0]
    async with object_host(tmp_path / "o"):
        clock[0] = start + 9.9
        assert all([(await consume("t5", "edge")).allowed for _ in range(5)])
        clock[0] = start + 10.1  # a fixed window would reset here and admit 5 more
        refused = await consume("t5", "edge")
        assert not refused.allowed
        assert refused.retry_after == pytest.approx(9.8)
        clock[0] = start + 9.9 + 10  # exactly one period after the burst: free again
        assert (await consume("t5", "edge")).allowed


async def test_retry_after_is_truthful_to_the_instant(tmp_path, clock):
    start = clock[0]
    async with object_host(tmp_path / "o"):
        for offset in (0.0, 1.0, 2.0, 3.0, 4.0):
            clock[0] = start + offset
            assert (await consume("t5", "r")).allowed
        clock[0] = start + 5.0
        refused = await consume("t5", "r", cost=2)
        # two units free once the entries of +0 and +1 leave the window: at +11
        assert refused.retry_after == pytest.approx(6.0)
        clock[0] = refused.at + refused.retry_after - 0.001
        assert not (await consume("t5", "r", cost=2)).allowed
        clock[0] = refused.at + refused.retry_after
        assert (await consume("t5", "r", cost=2)).allowed


async def test_clock_stepping_back_does_not_reopen_the_window(tmp_path, clock):
    start = clock[0]
    async with object_host(tmp_path / "o"):
        assert all([(await consume("t3", "c")).allowed for _ in range(3)])
        clock[0] = start - 100  # e.g. the owner's clock was stepped back
        refused = await consume("t3", "c")
        assert not refused.allowed and refused.at == start


async def test_peek_consumes_nothing_and_creates_no_file(tmp_path, clock):
    async with object_host(tmp_path / "o"):
        seen = await peek("t5", "ghost")
        assert seen.allowed and seen.remaining == 5 and seen.reset_after == 0
        assert not object_file(tmp_path / "o", "t5", "ghost").exists()
        await consume("t5", "ghost", cost=4)
        seen = await peek("t5", "ghost")
        assert seen.allowed and seen.remaining == 1
        assert (await peek("t5", "ghost")).remaining == 1
        await consume("t5", "ghost")
        full = await peek("t5", "ghost")
        assert not full.allowed and full.retry_after == pytest.approx(10.0)


async def test_validation_errors():
    # Checked before any call: no host needed.
    with pytest.raises(UnknownPolicy):
        await consume("nope", "k")
    with pytest.raises(UnknownPolicy):
        await peek("nope", "k")
    for key in ("", "x" * 257, "tab\there", "nl\n", "\x00", 5):
        with pytest.raises(InvalidKey):
            await consume("t5", key)
    for cost in (0, -1, 6, 1.5, "1", True, None):
        with pytest.raises(InvalidCost):
            await consume("t5", "k", cost=cost)
    assert issubclass(InvalidKey, ValueError) and issubclass(InvalidCost, ValueError)


async def test_odd_but_printable_keys_are_fine(tmp_path):
    async with object_host(tmp_path / "o"):
        for key in ("a/b/c", "ünï cödé ✓", "x" * 256, "key:with:colons", "?&=#%"):
            assert (await consume("t5", key)).remaining == 4


async def test_the_log_survives_eviction(tmp_path, clock):
    async with object_host(tmp_path / "o"):
        await consume("t5", "durable", cost=4)
        stub = get_namespace("ratelimit.Limiter").get_by_name(object_name("t5", "durable"))
        assert await evict(stub)
        assert (await consume("t5", "durable")).remaining == 0
        assert not (await consume("t5", "durable")).allowed


async def test_concurrent_callers_on_one_key_get_exactly_the_limit(tmp_path):
    with override_settings(RATELIMIT_POLICIES={"big": {"limit": 50, "period": 60}}):
        async with object_host(tmp_path / "o"):
            got = await asyncio.gather(*(consume("big", "hot") for _ in range(400)))
            assert sum(d.allowed for d in got) == 50
            assert sorted(d.remaining for d in got if d.allowed) == list(range(50))


async def test_an_idle_limiter_deletes_itself_when_its_window_ends(tmp_path):
    storage = tmp_path / "o"
    async with object_host(storage, ALARM_POLL_INTERVAL=0.1):
        assert (await consume("short", "idle")).allowed
        path = object_file(storage, "short", "idle")
        assert path.exists()
        deadline = time.monotonic() + 10
        while path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not path.exists(), "the limiter's file outlived its window"
        # A fresh start after deletion: the full quota, nothing remembered.
        assert (await consume("short", "idle")).remaining == 1


async def test_a_busy_limiter_is_not_deleted_while_its_log_is_live(tmp_path):
    storage = tmp_path / "o"
    async with object_host(storage, ALARM_POLL_INTERVAL=0.1):
        ends = time.monotonic() + 1.2
        while time.monotonic() < ends:
            await consume("short", "busy")
            await asyncio.sleep(0.05)
        # Whatever alarms fired meanwhile, the last admissions are still remembered.
        seen = await peek("short", "busy")
        assert seen.remaining < 2


async def test_a_full_mailbox_is_retried_briefly_not_failed(tmp_path):
    """More concurrent callers on one key than the mailbox holds: the service retries the
    refused calls (they provably did not start), so every caller gets a decision."""
    with override_settings(RATELIMIT_POLICIES={"big": {"limit": 50, "period": 60}}):
        async with object_host(tmp_path / "o", MAILBOX_SIZE=20):
            got = await asyncio.gather(*(consume("big", "crowd") for _ in range(300)))
            assert sum(d.allowed for d in got) == 50


def test_system_checks_report_bad_policies_and_rules():
    from apps.ratelimit.checks import check_policies

    good = {"p": {"limit": 1, "period": 1}}
    with override_settings(RATELIMIT_POLICIES=good, RATELIMIT_MIDDLEWARE=[]):
        assert check_policies() == []
    bad = {"a:b": {"limit": 1, "period": 1}, "z": {"limit": 0, "period": 1}, "y": {}}
    rules = [{"prefix": "/x/"}, {"prefix": "/y/", "policy": "nope"}]
    with override_settings(RATELIMIT_POLICIES=bad, RATELIMIT_MIDDLEWARE=rules):
        ids = sorted(error.id for error in check_policies())
    assert ids == [
        "ratelimit.E002",
        "ratelimit.E003",
        "ratelimit.E003",
        "ratelimit.E004",
        "ratelimit.E005",
    ]


def test_inline_rates_read_as_django_ratelimit_writes_them():
    from apps.ratelimit.service import parse_rate

    assert parse_rate("5/m") == (5, 60.0)
    assert parse_rate("100/15m") == (100, 900.0)
    assert parse_rate("1/d") == (1, 86400.0)
    for bad in ("0/m", "5/0m", "5/y", "m/5", "", None):
        with pytest.raises(ValueError):
            parse_rate(bad)
