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
