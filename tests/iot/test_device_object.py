"""The ``iot.Device`` object in an in-process embedded host (real turns, real SQLite):
versions, deletion that continues the count, the device-list summary, and telemetry
(10,000 points: exact range queries; retention by count and by age)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time

import pytest
from django.test import override_settings

from apps.iot import twin as rules
from apps.iot.devices import get_device_stub
from apps.iot.models import DeviceSummary
from durable_core.inspection import adestroy
from durable_core.testing import evict, object_host
from tests.iot.conftest import in_own_loop

pytestmark = pytest.mark.django_db(transaction=True)


def patch(state: dict, version: int | None = None) -> dict:
    return rules.parse_update({"state": state, **({"version": version} if version else {})})


async def wait_summary(object_id: str, check, timeout: float = 5.0) -> DeviceSummary:
    deadline = time.monotonic() + timeout
    while True:
        row = await DeviceSummary.objects.filter(object_id=object_id).afirst()
        if row is not None and check(row):
            return row
        assert time.monotonic() < deadline, f"summary never matched: {row and row.__dict__}"
        await asyncio.sleep(0.05)


@in_own_loop
async def test_versions_count_every_write_and_continue_after_delete(tmp_path):
    async with object_host(tmp_path / "o"):
        device = get_device_stub("pump-1")
        assert await device.get_twin() is None
        for n in range(1, 4):
            result = await device.update(patch({"desired": {"n": n}}))
            assert result["status"] == 200 and result["twin"]["version"] == n
        conflict = await device.update(patch({"desired": {"n": 9}}, version=2))
        assert conflict == {
            "status": 409,
            "error": "version_conflict",
            "message": "version 2 is not current",
            "version": 3,
        }
        assert await device.delete_twin() is True  # a write: version 4
        assert await device.get_twin() is None
        assert await device.delete_twin() is False  # nothing to delete: no version taken
        again = await device.update(patch({"reported": {"n": 1}}))
        assert again["twin"]["version"] == 5  # the count continues, as AWS shadows do
        assert again["twin"]["state"]["desired"] == {}  # nothing of the old twin came back
        assert await evict(device)
        assert (await device.get_twin())["version"] == 5
        row = await wait_summary(device.id.hex, lambda r: r.version == 5)
        assert row.device_id == "pump-1" and row.has_twin and not row.connected


@in_own_loop
async def test_a_delete_makes_every_earlier_version_stale(tmp_path):
    """GET (v1) -> DELETE -> PATCH with version 1 is a conflict, not a new twin holding
    only the patch (issue 16 §6); the same for a device's report over its socket path."""
    async with object_host(tmp_path / "o"):
        device = get_device_stub("pump-stale")
        first = await device.update(patch({"desired": {"speed": 3, "mode": "eco"}}))
        read_version = first["twin"]["version"]
        assert await device.delete_twin() is True
        late = await device.update(patch({"desired": {"speed": 4}}, version=read_version))
        assert late["status"] == 409 and late["error"] == "version_conflict"
        assert late["version"] == read_version + 1
        assert await device.get_twin() is None  # nothing was recreated
        fresh = await device.update(patch({"desired": {"speed": 4}}, version=late["version"]))
        assert fresh["status"] == 200 and fresh["twin"]["version"] == read_version + 2


@in_own_loop
async def test_oversized_document_is_refused_whole(tmp_path):
    async with object_host(tmp_path / "o"):
        device = get_device_stub("big")
        await device.update(patch({"desired": {"a": "x" * 4000}}))
        refused = await device.update(patch({"reported": {"b": "y" * 4500}}))
        assert refused["status"] == 413 and refused["error"] == "too_large"
        twin = await device.get_twin()
        assert twin["version"] == 1 and twin["state"]["reported"] == {}


def stored_rows(storage_dir, stub) -> int:
    path = storage_dir / "iot.Device" / stub.id.hex[:2] / f"{stub.id.hex}.sqlite3"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
    finally:
        conn.close()


async def ingest(device, points: list[tuple[float, float]], metric: str = "temp") -> None:
    for start in range(0, len(points), 1000):
        batch = [{"ts": ts, "metrics": {metric: v}} for ts, v in points[start : start + 1000]]
        result = await device.add_telemetry(batch)
        assert result == {"status": 202, "stored": len(batch)}


@in_own_loop
async def test_ten_thousand_points_range_queries_are_exact(tmp_path):
    rng = random.Random(8)
    now = time.time()
    # 10,000 points over the last ~3 hours, some sharing a timestamp, sent out of order.
    points = [
        (round(now - 10_000 + i + rng.choice([0, 0, 0.5]), 3), float(i)) for i in range(10_000)
    ]
    shuffled = points[:]
    rng.shuffle(shuffled)
    expected = sorted(points, key=lambda p: p[0])
    # The count bound is per device (all metrics): room for the 10,001 values sent here.
    with override_settings(IOT_TELEMETRY_MAX_POINTS=20_000):
        await check_ranges(tmp_path, rng, now, points, shuffled, expected)


async def check_ranges(tmp_path, rng, now, points, shuffled, expected) -> None:
    async with object_host(tmp_path / "o"):
        device = get_device_stub("sensor-1")
        await ingest(device, shuffled)
        await ingest(device, [(now - 5, 1.0)], metric="humidity")  # another metric
        everything = await device.query_telemetry("temp", None, None, 10_000)
        assert [p[0] for p in everything] == [p[0] for p in expected]
        assert sorted(everything) == sorted([list(p) for p in points])
        for _ in range(25):
            a, b = sorted(rng.sample(points, 2))
            since, until = a[0], b[0]
            got = await device.query_telemetry("temp", since, until, 10_000)
            want = sorted([p for p in points if since <= p[0] <= until], key=lambda p: p[0])
            assert [p[0] for p in got] == [p[0] for p in want]  # inclusive, oldest first
            assert sorted(map(tuple, got)) == sorted(want)
            limited = await device.query_telemetry("temp", since, until, 7)
            assert [p[0] for p in limited] == [p[0] for p in want[:7]]
        assert await device.query_telemetry("temp", now + 1, None, 10) == []
        assert await device.query_telemetry("nope", None, None, 10) == []
        assert await device.metrics() == ["humidity", "temp"]
        assert stored_rows(tmp_path / "o", device) == 10_001


@in_own_loop
async def test_retention_bounds_count_and_age(tmp_path):
    now = time.time()
    with override_settings(IOT_TELEMETRY_MAX_POINTS=2_500, IOT_TELEMETRY_MAX_AGE=3_600):
        async with object_host(tmp_path / "o"):
            device = get_device_stub("sensor-2")
            points = [(now - 3_000 + i * 0.25, float(i)) for i in range(10_000)]
            for start in range(0, 10_000, 500):  # the bound holds after every write
                await ingest(device, points[start : start + 500])
                assert stored_rows(tmp_path / "o", device) == min(start + 500, 2_500)
            kept = await device.query_telemetry("temp", None, None, 10_000)
            assert kept == [list(p) for p in points[-2_500:]]  # the newest, oldest first
            # Points older than the age bound are dropped at the next write.
            await ingest(device, [(now - 7_200, -1.0)])
            assert await device.query_telemetry("temp", None, now - 3_601, 10) == []
            assert stored_rows(tmp_path / "o", device) == 2_500


@in_own_loop
async def test_a_twin_recreated_after_its_storage_was_deleted_continues_the_version_count(
    tmp_path,
):
    """The inspection API's delete-storage removes the device's file with its version
    count; a twin written again continues above every earlier version and a version read
    before the deletion is stale (ABA, issue 16); the device list follows the new twin."""
    async with object_host(tmp_path / "o"):
        device = get_device_stub("pump-aba")
        for speed in range(3):
            done = await device.update(patch({"desired": {"speed": speed}}))
        read_version = done["twin"]["version"]
        await wait_summary(device.id.hex, lambda r: r.version == read_version)
        await adestroy(device.id)
        assert await device.get_twin() is None
        late = await device.update(patch({"desired": {"speed": 9}}, version=read_version))
        assert late["status"] == 409 and late["version"] == read_version + 1
        fresh = await device.update(patch({"desired": {"speed": 4}}))
        assert fresh["twin"]["version"] == read_version + 2
        row = await wait_summary(device.id.hex, lambda r: r.version == read_version + 2)
        assert row.has_twin
