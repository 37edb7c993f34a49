"""Hot-object detection (durable_core/hot.py): a bounded, decayed top-K per host that
names the object doing the most, merged across hosts, cheap on the turn path."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from durable_core import clock, hot
from durable_core.hot import HotObjects, merge
from durable_core.registry import get_namespace
from durable_core.testing import object_host
from tests import objects  # noqa: F401  (registers the test classes)


def tracker(active: dict | None = None) -> HotObjects:
    """A tracker whose last fold was one second ago."""
    t = HotObjects((active or {}).get, mailbox_size=100)
    t._last_fold = clock.monotonic() - 1.0
    return t


def test_the_busiest_object_ranks_first_and_cools_down_when_idle():
    t = tracker()
    for _ in range(500):
        t.turn("ns:hot", 0.001)  # 0.5 s inside turns over one second: busy 0.5
    for i in range(50):
        t.turn(f"ns:cold{i}", 0.0001)
    first = t.snapshot()["hot"][0]
    assert (first["namespace"], first["id"]) == ("ns", "hot")
    assert first["turns_per_s"] > 100 and 0.1 < first["busy"] <= 0.5
    t.fold(now=clock.monotonic() + 60.0)  # a minute without turns: all decays away
    assert t.snapshot()["hot"] == []
    assert t._table == {}


def test_the_table_stays_bounded_however_many_objects_run():
    t = tracker()
    for i in range(hot.WINDOW_CAP * 3):  # the window folds itself when full
        t.turn(f"ns:o{i}", 0.0001)
    t.fold(now=t._last_fold + 1.0)
    assert len(t._table) <= hot.CAPACITY
    assert len(t._window) == 0
    assert len(t.snapshot()["hot"]) <= hot.PUBLISHED


def test_refused_calls_count_and_make_an_overload_event_with_the_mailbox_depth():
    active = {"ns:x": SimpleNamespace(mailbox=[None] * 100, object_id=SimpleNamespace(name="x"))}
    t = tracker(active)
    for _ in range(30):
        t.rejected("ns:x")
    for _ in range(5):
        t.rejected("ns:x", limited=True)
    snap = t.snapshot()
    (entry,) = snap["hot"]
    assert entry["mailbox"] == 100 and entry["name"] == "x" and entry["rejected"] > 0
    (event,) = snap["overloads"]
    assert (event["id"], event["mailbox_full"], event["limited"]) == ("x", 30, 5)


def test_merge_ranks_the_hosts_entries_together_with_their_owner():
    a = {"id": "A", "hot": [{"namespace": "n", "id": "1", "heat": 0.2, "busy": 0.2}]}
    b = {
        "id": "B",
        "hot": [
            {"namespace": "n", "id": "2", "heat": 0.9, "busy": 0.1},
            {"namespace": "n", "id": "1", "heat": 0.1, "busy": 0.1},  # moved: A's is hotter
        ],
        "overloads": [{"ts": 5.0, "id": "2"}],
    }
    merged = merge([a, b])
    assert [(o["id"], o["owner"]) for o in merged["objects"]] == [("2", "B"), ("1", "A")]
    assert merged["overloads"] == [{"ts": 5.0, "id": "2", "owner": "B"}]
    by_busy = merge([a, b], by="busy", limit=1)["objects"]
    assert [o["id"] for o in by_busy] == ["1"]
    with pytest.raises(ValueError):
        merge([a], by="nonsense")


def test_the_turn_hook_costs_well_under_a_microsecond():
    """The per-turn cost of detection (one dict look-up, two additions)."""
    t = tracker()
    keys = [f"ns:{i}" for i in range(100)]
    n = 200_000
    started = time.perf_counter()
    for i in range(n):
        t.turn(keys[i % 100], 0.0001)
    per_turn = (time.perf_counter() - started) / n
    print(f"hot.turn: {per_turn * 1e9:.0f} ns per turn")
    assert per_turn < 1e-6


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_host_names_the_object_driven_hot_among_many(tmp_path):
    """One object of twenty gets most of the calls: the host's heartbeat description
    names it first, with its name and figures."""
    async with object_host(tmp_path / "objects") as host:
        counters = get_namespace("tests.Counter")
        others = [counters.get_by_name(f"c{i}") for i in range(20)]
        hottest = counters.get_by_name("hottest")

        async def drive(stub, n):
            for _ in range(n):
                await stub.increment()

        await asyncio.gather(drive(hottest, 300), *(drive(s, 5) for s in others))
        top = host.describe()["hot"]
        assert top[0]["name"] == "hottest" and top[0]["namespace"] == "tests.Counter"
        assert top[0]["turns_per_s"] > top[1]["turns_per_s"] * 5
        assert 0 < top[0]["busy"] <= 1
