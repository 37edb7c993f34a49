"""durable_core.testing.pytest_plugin: the fixtures a project gets by installing the
package (registered through the pytest11 entry point, no conftest.py needed)."""

from __future__ import annotations

import json
import time
from importlib.metadata import entry_points
from pathlib import Path

from durable_core.conf import get_setting, get_storage_dir
from durable_core.ids import get_id_key
from durable_core.registry import get_namespace
from durable_core.testing import fire_alarm
from tests import objects  # noqa: F401  (tests.Counter, tests.Alarmed)

seen_keys: list[bytes] = []


def test_the_plugin_is_registered_by_the_package_entry_point(pytestconfig):
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "durable_core"]
    assert entry.value == "durable_core.testing.pytest_plugin"
    assert pytestconfig.pluginmanager.has_plugin("durable_core")


async def test_durable_host_calls_an_object_with_no_database_marker(durable_host):
    counter = get_namespace("tests.Counter").get_by_name("plugin")
    assert await counter.increment(by=2) == 2
    assert await counter.increment() == 3
    assert durable_host.running
    # Its own directory, not the one this suite's autouse fixture sets (tmp_path):
    private = get_storage_dir().parent
    assert private.name.startswith("durable")
    assert Path(get_setting("ID_KEY_FILE")) == private / "id_key"
    assert (private / "id_key").exists()


async def test_each_durable_host_has_its_own_id_key_and_storage_1(durable_host):
    seen_keys.append(get_id_key())
    counter = get_namespace("tests.Counter").get_by_name("private")
    assert await counter.increment() == 1


async def test_each_durable_host_has_its_own_id_key_and_storage_2(durable_host):
    """Same name as the test before: a fresh object (its own storage), and another key."""
    seen_keys.append(get_id_key())
    counter = get_namespace("tests.Counter").get_by_name("private")
    assert await counter.increment() == 1
    assert len(seen_keys) == 2 and seen_keys[0] != seen_keys[1]


async def test_fire_alarm_runs_an_alarm_an_hour_early_and_waits_for_it(durable_host):
    alarmed = get_namespace("tests.Alarmed").get_by_name("plugin")
    await alarmed.schedule(time.time() + 3600)
    await fire_alarm(alarmed)
    assert len(await alarmed.firings()) == 1
    assert await alarmed.alarm() is None


async def test_durable_websocket_round_trips_through_the_projects_asgi_application(
    durable_websocket,
):
    """The demo's chat over an in-process client: hello, roster, ready, send, ack."""
    async with durable_websocket("/ws/chat/plugin/") as ws:
        await ws.send_to(text_data=json.dumps({"type": "hello", "name": "ann"}))
        assert json.loads(await ws.receive_from(5))["type"] == "roster"
        assert json.loads(await ws.receive_from(5))["type"] == "ready"
        await ws.send_to(text_data=json.dumps({"type": "send", "text": "hi"}))
        kinds = {json.loads(await ws.receive_from(5))["type"] for _ in range(2)}
        assert kinds == {"msg", "ack"}


async def test_durable_clock_jumps_to_a_due_alarm_and_runs_only_what_is_due(durable_clock):
    alarmed = get_namespace("tests.Alarmed").get_by_name("three-days")
    due = time.time() + 3 * 86400
    await alarmed.schedule(due)
    assert await durable_clock.advance(3600) == 0  # an hour later: not yet
    assert await alarmed.firings() == []
    assert await durable_clock.advance(3 * 86400) == 1  # past the due time: it ran
    assert len(await alarmed.firings()) == 1
    assert await alarmed.alarm() is None


def test_the_wall_clock_is_real_again_after_a_durable_clock_test():
    from durable_core import clock

    assert abs(clock.wall() - time.time()) < 1
