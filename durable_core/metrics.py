"""Prometheus metrics of the runtime (DESIGN §10), served at ``/metrics``.

Counters and histograms are process-wide (prometheus-client's default registry): each
host process is scraped on its own. The core calls the small helpers below where each
thing happens, one line per call site; the gauges (active objects, mailbox depth, open
stores, sockets) are read from the host when scraped, so keeping them costs nothing.
Label values come from fixed sets or from namespaces (one per class), never from user
input, so the number of series stays bounded.
"""

from __future__ import annotations

import functools
from collections import Counter as _Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # no *_created series: they double the output for nothing

TURNS = Counter(
    "durable_turns",
    "Turns run, by namespace, event kind and outcome",
    ["namespace", "kind", "outcome"],
)
TURN_SECONDS = Histogram(
    "durable_turn_duration_seconds",
    "Time from a turn's start to its end (before commit)",
    ["namespace"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CALLS = Counter(
    "durable_calls",
    "Calls and events routed (each attempt), local or to another host",
    ["route", "kind"],
)
ACTIVATIONS = Counter("durable_activations", "Objects activated on this host", ["namespace"])
EVICTIONS = Counter("durable_evictions", "Objects evicted from this host, by reason", ["reason"])
FENCE_REJECTIONS = Counter(
    "durable_fence_rejections", "Activations or commits the storage fence refused (StaleOwner)"
)
LEASE_ACQUISITIONS = Counter("durable_lease_acquisitions", "Leases this host acquired")
LEASE_LOSSES = Counter(
    "durable_lease_losses", "Leases this host lost (not renewed, or lapsed before a commit)"
)
ALARMS_FIRED = Counter("durable_alarms_fired", "on_alarm runs started", ["namespace"])
ALARM_LAG = Histogram(
    "durable_alarm_lag_seconds",
    "How late an alarm ran after its scheduled time",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
WS_MESSAGES = Counter(
    "durable_websocket_messages",
    "WebSocket messages objects received (in) and sent (out)",
    ["direction"],
)
MAILBOX_OVERLOADS = Counter(
    "durable_mailbox_overloads", "Events refused because an object's mailbox was full"
)

# Eviction reasons the runtime gives; anything else (a user's ctx.abort reason) is "abort".
_EVICTION_REASONS = {
    "idle",
    "lease lost",
    "lease lapsed",
    "host shutdown",
    "fenced",
    "destroyed",
    "dispatcher failed",
    "on_start failed",
    "evicted by staff",
}


def turn_finished(namespace: str, kind: str, failed: bool, seconds: float) -> None:
    """One turn ended (``kind``: call, alarm, ws, inspect)."""
    _child(TURNS, namespace, kind, "error" if failed else "ok").inc()
    _child(TURN_SECONDS, namespace).observe(seconds)


def call_routed(local: bool, kind: str) -> None:
    """The router sent one attempt of a call or event (here, or to another host)."""
    _child(CALLS, "local" if local else "remote", kind).inc()


@functools.lru_cache(maxsize=4096)
def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: these run on every turn and call."""
    return metric.labels(*labels)


def evicted(reason: str) -> None:
    """An object started its eviction."""
    EVICTIONS.labels(reason if reason in _EVICTION_REASONS else "abort").inc()


def alarm_fired(namespace: str, lag: float) -> None:
    """``on_alarm`` is about to run, ``lag`` seconds after its scheduled time."""
    ALARMS_FIRED.labels(namespace).inc()
    ALARM_LAG.observe(max(0.0, lag))


class _HostCollector(Collector):
    """Gauges read from this process's host and front when scraped."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only, for the registry's duplicate check (nothing is imported or read).
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        active = GaugeMetricFamily(
            "durable_active_objects", "Objects active on this host", labels=["namespace"]
        )
        depth = GaugeMetricFamily("durable_mailbox_depth", "Events queued in this host's mailboxes")
        stores = GaugeMetricFamily("durable_open_stores", "Object databases held open here")
        sockets = GaugeMetricFamily(
            "durable_websockets", "Client WebSockets held by this front", labels=["namespace"]
        )
        return active, depth, stores, sockets

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .consumers import get_front
        from .host import get_host

        host = get_host()
        active, depth, stores, sockets = self._families()
        if host is not None:
            tally = _Tally(a.object_id.namespace for a in list(host.active.values()))
            for namespace, n in sorted(tally.items()):
                active.add_metric([namespace], n)
            depth.add_metric([], sum(len(a.mailbox) for a in list(host.active.values())))
            stores.add_metric([], len(host.stores))
        per_ns: _Tally[str] = _Tally()
        for key, n in get_front().counts_by_object().items():
            per_ns[key.rsplit(":", 1)[0]] += n
        for namespace, n in sorted(per_ns.items()):
            sockets.add_metric([namespace], n)
        yield from (active, depth, stores, sockets)


REGISTRY.register(_HostCollector())


def render() -> tuple[bytes, str]:
    """The exposition text of every metric, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
