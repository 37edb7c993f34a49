"""Prometheus metrics of the runtime (DESIGN §10), served at ``/metrics``.

Everything lives in this module's own ``REGISTRY``, never in prometheus-client's global
one, and importing the module changes no global setting: a project with metrics of its
own keeps them as they were. To serve both from one endpoint, register ours in yours:
``prometheus_client.REGISTRY.register(durable_core.metrics.REGISTRY)``.

Each process counts its own turns and calls, so with several processes (``runcluster``,
several uvicorn workers, a Procfile) scrape every process on its own address, each at its
``/metrics``: the ``host`` of ``/healthz`` tells them apart. prometheus-client's
multiprocess mode is not used (it cannot hold the gauges read from the live host).

The core calls the small helpers below where each thing happens, one line per call site;
the gauges (active objects, mailbox depth, open stores, sockets, event-loop lag) are read
when scraped, so keeping them costs nothing. Label values are identifiers from fixed
sets or namespaces (one per class), never user input, so the number of series stays
bounded.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter as _Tally
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

TURNS = Counter(
    "durable_turns",
    "Turns run, by namespace, event kind and outcome",
    ["namespace", "kind", "outcome"],
    registry=REGISTRY,
)
TURN_SECONDS = Histogram(
    "durable_turn_duration_seconds",
    "Time from a turn's start to its end (before commit)",
    ["namespace"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CALLS = Counter(
    "durable_calls",
    "Calls and events routed (each attempt), local or to another host",
    ["route", "kind"],
    registry=REGISTRY,
)
ACTIVATIONS = Counter(
    "durable_activations", "Objects activated on this host", ["namespace"], registry=REGISTRY
)
EVICTIONS = Counter(
    "durable_evictions", "Objects evicted from this host, by reason", ["reason"], registry=REGISTRY
)
FENCE_REJECTIONS = Counter(
    "durable_fence_rejections",
    "Activations or commits the storage fence refused (StaleOwner)",
    registry=REGISTRY,
)
LEASE_ACQUISITIONS = Counter(
    "durable_lease_acquisitions", "Leases this host acquired", registry=REGISTRY
)
LEASE_LOSSES = Counter(
    "durable_lease_losses",
    "Leases this host lost (not renewed, or lapsed before a commit)",
    registry=REGISTRY,
)
ALARMS_FIRED = Counter(
    "durable_alarms_fired", "on_alarm runs started", ["namespace"], registry=REGISTRY
)
ALARM_LAG = Histogram(
    "durable_alarm_lag_seconds",
    "How late an alarm ran after its scheduled time",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
WS_MESSAGES = Counter(
    "durable_websocket_messages",
    "WebSocket messages objects received (in) and sent (out)",
    ["direction"],
    registry=REGISTRY,
)
MAILBOX_OVERLOADS = Counter(
    "durable_mailbox_overloads",
    "Events refused because an object's mailbox was full",
    registry=REGISTRY,
)
LIMIT_REFUSALS = Counter(
    "durable_limit_refusals",
    "Calls refused by an operator's per-object limit (limits.py)",
    registry=REGISTRY,
)

# Eviction reasons the runtime gives, and their label values (identifiers); anything else
# (a user's ctx.abort reason) is "abort".
_EVICTION_REASONS = {
    reason: reason.replace(" ", "_")
    for reason in (
        "idle",
        "lease lost",
        "lease lapsed",
        "host shutdown",
        "fenced",
        "destroyed",
        "dispatcher failed",
        "on_start failed",
        "evicted by staff",
    )
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
    EVICTIONS.labels(_EVICTION_REASONS.get(reason, "abort")).inc()


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


class _LoopLag(Collector):
    """``durable_event_loop_lag_seconds``: how late the serving loop ran a 0.25 s timer,
    worst over the last scrape interval. A busy loop delays every turn, reply and socket
    of the process; this shows it before the latency histograms do."""

    interval = 0.25

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Task | None = None

    def watch(self) -> None:
        """Start measuring on the running loop (once per process; the servers call it)."""
        if self.task is None or self.task.done() or self.task.get_loop().is_closed():
            # ensure_future: Daphne's reactor calls this before its asyncio loop runs.
            self.task = asyncio.ensure_future(self._measure())

    async def _measure(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval)
            self.worst = max(self.worst, time.monotonic() - start - self.interval)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter([self._family()])

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "durable_event_loop_lag_seconds",
            "Worst delay of the serving event loop since the last scrape (0 if not watched)",
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        family.add_metric([], self.worst)
        self.worst = 0.0
        yield family


_loop_lag = _LoopLag()
REGISTRY.register(_loop_lag)
watch_event_loop = _loop_lag.watch


class _WithoutCreated:
    """A view of a registry without the ``*_created`` samples: they double the output for
    nothing. (prometheus-client's ``disable_created_metrics`` would do it for the whole
    process, the host project's metrics included.)"""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self.registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield kept


def render() -> tuple[bytes, str]:
    """The exposition text of every metric, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(_WithoutCreated(REGISTRY)), CONTENT_TYPE_LATEST  # type: ignore[arg-type]
