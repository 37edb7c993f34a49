"""``/metrics``: Prometheus text that parses, with counters that move when objects work."""

from __future__ import annotations

import pytest
from django.test import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from durable_core.registry import get_namespace

pytestmark = pytest.mark.django_db(transaction=True)

NS = "tests.Notes"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_counters_move(host):
    client = AsyncClient()
    before = samples((await client.get("/metrics")).content.decode())
    stub = get_namespace(NS).get_by_name("metered")
    for i in range(5):
        await stub.put("k", i)
    await stub.get("k")
    answer = await client.get("/metrics")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/plain")
    after = samples(answer.content.decode())

    turns = ("durable_turns_total", {"namespace": NS, "kind": "call", "outcome": "ok"})
    assert value(after, turns[0], **turns[1]) - value(before, turns[0], **turns[1]) == 6
    hist = "durable_turn_duration_seconds_count"
    assert value(after, hist, namespace=NS) - value(before, hist, namespace=NS) == 6
    calls = "durable_calls_total"
    assert (
        value(after, calls, route="local", kind="call")
        - value(before, calls, route="local", kind="call")
        >= 6
    )
    acts = "durable_activations_total"
    assert value(after, acts, namespace=NS) - value(before, acts, namespace=NS) == 1
    leases = "durable_lease_acquisitions_total"
    assert value(after, leases) - value(before, leases) == 1
    assert value(after, "durable_active_objects", namespace=NS) == 1
    for name in (
        "durable_evictions_total",
        "durable_fence_rejections_total",
        "durable_lease_losses_total",
        "durable_alarms_fired_total",
        "durable_websocket_messages_total",
        "durable_mailbox_overloads_total",
        "durable_mailbox_depth",
    ):
        assert any(key[0].startswith(name.removesuffix("_total")) for key in after) or any(
            f.name == name.removesuffix("_total")
            for f in text_string_to_metric_families(answer.content.decode())
        ), name

    await host.active[stub.id.key].evict("idle")
    final = samples((await client.get("/metrics")).content.decode())
    evictions = "durable_evictions_total"
    assert value(final, evictions, reason="idle") - value(after, evictions, reason="idle") == 1
    assert value(final, "durable_active_objects", namespace=NS) == 0


async def test_metrics_can_be_restricted_to_staff(host, settings, staff_client):
    settings.DURABLE_OBJECTS = {**settings.DURABLE_OBJECTS, "METRICS_PUBLIC": False}
    answer = await AsyncClient().get("/metrics")
    assert answer.status_code == 401 and answer.json()["error"] == "not_authenticated"
    assert (await staff_client.get("/metrics")).status_code == 200


def test_importing_the_metrics_module_leaves_the_global_prometheus_registry_alone():
    """A host project's own metrics keep their *_created series and their registry."""
    import subprocess
    import sys

    probe = (
        "import prometheus_client, prometheus_client.metrics as m\n"
        "before = set(prometheus_client.REGISTRY._names_to_collectors)\n"
        "import durable_core.metrics\n"
        "after = set(prometheus_client.REGISTRY._names_to_collectors)\n"
        "assert after == before, after - before\n"
        "assert m._use_created, 'created series disabled for the whole process'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


async def test_no_created_series_and_eviction_reasons_are_identifiers(host):
    from durable_core import metrics

    metrics.evicted("lease lost")
    metrics.evicted("a user's own reason")
    text = (await AsyncClient().get("/metrics")).content.decode()
    assert "_created" not in text
    found = samples(text)
    assert value(found, "durable_evictions_total", reason="lease_lost") >= 1
    assert value(found, "durable_evictions_total", reason="abort") >= 1
    reasons = {dict(k[1]).get("reason") for k in found if k[0] == "durable_evictions_total"}
    assert all(r.replace("_", "").isalnum() for r in reasons), reasons
    assert any(k[0].startswith("process_") for k in found)  # the process collectors


async def test_the_event_loop_lag_gauge_shows_a_blocked_loop(host):
    import asyncio
    import time

    from durable_core import metrics

    metrics.watch_event_loop()
    await asyncio.sleep(0.3)  # the watcher runs a first timer
    await AsyncClient().get("/metrics")  # resets the worst-since-last-scrape value
    time.sleep(0.5)  # block the loop, as a CPU-bound turn would
    await asyncio.sleep(0.3)
    found = samples((await AsyncClient().get("/metrics")).content.decode())
    assert value(found, "durable_event_loop_lag_seconds") >= 0.2
