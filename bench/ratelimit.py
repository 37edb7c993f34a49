"""Rate limiter benchmark: our limiter object vs django-ratelimit on Django's Redis cache.

Both limiters get the same policy (LIMIT per 1 s, one hot key) and the same concurrent
load, in one run:

* saturating: CALLERS concurrent callers back to back for SECONDS: decisions/s, p50/p99
  latency of one decision, and the most admissions seen in any sliding 1 s window;
* edge bursts: the same callers fire one request each at 0.15 s before and 0.15 s after
  a whole second (django-ratelimit's window edge for a 1 s period), rounds 3 s apart:
  the most admissions in any sliding window, where a fixed window admits up to 2x.

Ours, in cluster mode on a private redis-server on 127.0.0.1, callers are asyncio tasks
calling ``apps.ratelimit.service.consume``: "remote owner" = the limiter object lives in
a ``manage.py runobjects`` worker process and every decision crosses Redis (as for a
caller on another host); "local owner" = this process hosts it (the caller is on the
owner's host). django-ratelimit 4.x: ``get_usage(..., increment=True)`` with
``django.core.cache.backends.redis.RedisCache`` on the same redis-server, callers are
threads (it is synchronous). Decision times: ours, the limiter's own ``at``;
django-ratelimit, the moment the call started (its window is chosen from that clock).
Writes bench/results/ratelimit.json.

    python bench/ratelimit.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    machine,
    percentile,
    progress,
    rounded,
    save_result,
    versions,
)

LIMIT = 50
PERIOD = 1.0
CALLERS = 64
POLICY = "bench"
NOTES = (
    "ours: apps.ratelimit consume() from asyncio tasks, cluster mode; remote owner = the "
    "limiter object in a runobjects worker (every decision crosses Redis), local owner = in "
    "the calling process. django-ratelimit: get_usage(increment=True) from threads on "
    "RedisCache, same redis-server. max window = most admissions in any sliding window of "
    "the period, from decision times (ours: the object's 'at'; django-ratelimit: call start). "
    "saturating starts at an arbitrary phase of the second, as real demand does."
)
NAMES = {
    "ours_remote_owner": "ours, remote owner",
    "ours_local_owner": "ours, local owner",
    "django_ratelimit": "django-ratelimit",
}


def setup_django(var_dir: Path) -> None:
    os.environ["VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DURABLE_LOG"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def max_in_window(times: list[float], period: float) -> int:
    """Most of ``times`` inside one window ``[s, s + period)`` (two pointers)."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j + 1 < len(ordered) and ordered[j + 1] - start < period:
            j += 1
        best = max(best, j - i + 1)
    return best


def summarize(decisions: list[tuple[float, float, bool]], seconds: float | None) -> dict:
    """decisions: (decision time, latency s, allowed)."""
    latencies = sorted(d[1] for d in decisions)
    admitted = [d[0] for d in decisions if d[2]]
    most = max_in_window(admitted, PERIOD)
    out = {
        "decisions": len(decisions),
        "admitted": len(admitted),
        "max_admitted_in_any_window": most,
        "over_admission": most / LIMIT,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }
    if seconds:
        out["decisions_per_s"] = len(decisions) / seconds
    return out


# -- ours ------------------------------------------------------------------------------


async def ours_saturating(seconds: float, key: str) -> dict:
    from apps.ratelimit.service import consume

    decisions: list[tuple[float, float, bool]] = []
    await consume(POLICY, key + "-warm")  # activation paths warmed up
    stop = time.perf_counter() + seconds
    started = time.perf_counter()

    async def caller() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            d = await consume(POLICY, key)
            decisions.append((d.at, time.perf_counter() - t0, d.allowed))

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return summarize(decisions, time.perf_counter() - started)


async def ours_edges(rounds: int, key: str) -> dict:
    from apps.ratelimit.service import consume

    decisions: list[tuple[float, float, bool]] = []

    async def fire(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        t0 = time.perf_counter()
        d = await consume(POLICY, key)
        decisions.append((d.at, time.perf_counter() - t0, d.allowed))

    for edge in _edges(rounds):
        await asyncio.gather(
            *(fire(edge - 0.15) for _ in range(CALLERS)),
            *(fire(edge + 0.15) for _ in range(CALLERS)),
        )
    return summarize(decisions, None)


# -- django-ratelimit ------------------------------------------------------------------


def _theirs_call(request, key: str) -> tuple[float, float, bool]:
    from django_ratelimit.core import get_usage

    at = time.time()
    t0 = time.perf_counter()
    usage = get_usage(
        request, group="bench", key=lambda group, request: key, rate=f"{LIMIT}/s", increment=True
    )
    return at, time.perf_counter() - t0, not usage["should_limit"]


def theirs_saturating(seconds: float, key: str) -> dict:
    from django.test import RequestFactory

    request = RequestFactory().post("/")
    decisions: list[tuple[float, float, bool]] = []
    lock = threading.Lock()
    _theirs_call(request, key + "-warm")
    stop = time.perf_counter() + seconds
    started = time.perf_counter()

    def caller() -> None:
        mine = []
        while time.perf_counter() < stop:
            mine.append(_theirs_call(request, key))
        with lock:
            decisions.extend(mine)

    with ThreadPoolExecutor(CALLERS) as pool:
        for future in [pool.submit(caller) for _ in range(CALLERS)]:
            future.result()
    return summarize(decisions, time.perf_counter() - started)


def theirs_edges(rounds: int, key: str) -> dict:
    from django.test import RequestFactory

    request = RequestFactory().post("/")
    decisions: list[tuple[float, float, bool]] = []

    def fire(at: float) -> tuple[float, float, bool]:
        time.sleep(max(0.0, at - time.time()))
        return _theirs_call(request, key)

    with ThreadPoolExecutor(2 * CALLERS) as pool:
        for edge in _edges(rounds):
            futures = [pool.submit(fire, edge - 0.15) for _ in range(CALLERS)]
            futures += [pool.submit(fire, edge + 0.15) for _ in range(CALLERS)]
            decisions.extend(f.result() for f in futures)
    return summarize(decisions, None)


def _edges(rounds: int):
    """Whole seconds at least 1 s ahead, then every 3 s (so each round starts afresh)."""
    edge = float(int(time.time()) + 2)
    for _ in range(rounds):
        yield edge
        edge += 3.0


# -- run -------------------------------------------------------------------------------


async def run(quick: bool, redis_url: str) -> dict:
    from django.test import override_settings

    from durable_core.host import start_host, stop_host

    seconds = 3.0 if quick else 10.0
    rounds = 1 if quick else 3
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
        },
    }
    results: dict[str, dict] = {name: {} for name in NAMES}
    with override_settings(
        CACHES=caches,
        RATELIMIT_USE_CACHE="ratelimit",
        RATELIMIT_POLICIES={POLICY: {"limit": LIMIT, "period": PERIOD}},
    ):
        # No host in this process yet: the worker claims the objects (remote owner).
        progress(f"ours, remote owner: saturating, {CALLERS} callers, {seconds:.0f} s")
        results["ours_remote_owner"]["saturating"] = await ours_saturating(seconds, "hot-r")
        progress(f"ours, remote owner: edge bursts, {rounds} round(s)")
        results["ours_remote_owner"]["edge_bursts"] = await ours_edges(rounds, "edge-r")
        progress(f"django-ratelimit: saturating, {CALLERS} callers, {seconds:.0f} s")
        results["django_ratelimit"]["saturating"] = await asyncio.to_thread(
            theirs_saturating, seconds, "hot"
        )
        progress(f"django-ratelimit: edge bursts, {rounds} round(s)")
        results["django_ratelimit"]["edge_bursts"] = await asyncio.to_thread(
            theirs_edges, rounds, "edge"
        )
        await start_host()  # now this process claims new objects (first access wins)
        try:
            progress(f"ours, local owner: saturating, {CALLERS} callers, {seconds:.0f} s")
            results["ours_local_owner"]["saturating"] = await ours_saturating(seconds, "hot-l")
            progress(f"ours, local owner: edge bursts, {rounds} round(s)")
            results["ours_local_owner"]["edge_bursts"] = await ours_edges(rounds, "edge-l")
        finally:
            await stop_host()
    return {"seconds": seconds, "rounds": rounds, "results": results}


def start_worker(var_dir: Path, redis_url: str):
    """A ``manage.py runobjects`` host process on the bench's Redis and VAR_DIR."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env.update(VAR_DIR=str(var_dir), DURABLE_REDIS_URL=redis_url, DURABLE_LOG="WARNING")
    log = open(var_dir / "worker.log", "wb")  # noqa: SIM115 (kept open for the child)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runobjects"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


async def wait_for_worker(timeout: float = 30.0) -> None:
    """Until a call reaches a live host (the worker registered in Redis)."""
    from apps.ratelimit.service import peek
    from durable_core.exceptions import DurableError

    deadline = time.monotonic() + timeout
    while True:
        try:
            await peek("api", "bench-probe")  # a policy of config.settings
            return
        except DurableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _ratios(results: dict) -> dict:
    """Throughput against django-ratelimit, and each one's worst window against the limit."""
    theirs = results["django_ratelimit"]["saturating"]["decisions_per_s"]
    out = {
        f"{name} decisions/s vs django-ratelimit": results[name]["saturating"]["decisions_per_s"]
        / theirs
        for name in ("ours_remote_owner", "ours_local_owner")
    }
    for name in NAMES:
        for load in ("saturating", "edge_bursts"):
            out[f"{name} {load} max window / limit"] = results[name][load]["over_admission"]
    return out


async def _measure(quick: bool, redis_url: str) -> dict:
    await wait_for_worker()
    return await run(quick, redis_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases (< 40 s)")
    args = parser.parse_args()
    load = [os.getloadavg()[0]]
    var_dir = Path(tempfile.mkdtemp(prefix="bench-rl-var-"))
    from durable_core.testing.redis_server import RedisServer

    redis = RedisServer(var_dir / "redis").start()
    worker = None
    try:
        os.environ["DURABLE_REDIS_URL"] = redis.url  # cluster mode for this process too
        setup_django(var_dir)
        worker = start_worker(var_dir, redis.url)
        measured = asyncio.run(_measure(args.quick, redis.url))
    finally:
        if worker is not None:
            worker.kill()
            worker.wait(10)
        redis.stop()
    load.append(os.getloadavg()[0])
    result = {
        "benchmark": "ratelimit",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(load),
        "versions": versions("django-ratelimit"),
        "policy": {"limit": LIMIT, "period": PERIOD},
        "callers": CALLERS,
        "quick": args.quick,
        "notes": NOTES,
        **rounded(measured),
        "ratios": rounded(_ratios(measured["results"]), 3),
    }
    save_result("ratelimit", result)
    print(f"\n{LIMIT} per {PERIOD:g} s, one key, {CALLERS} concurrent callers")
    print(f"{'':22}{'decisions/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max/window':>12}{'edges':>8}")
    for name, label in NAMES.items():
        sat = measured["results"][name]["saturating"]
        edge = measured["results"][name]["edge_bursts"]
        print(
            f"{label:22}{sat['decisions_per_s']:>12,.0f}{sat['p50_ms']:>9.2f}{sat['p99_ms']:>9.2f}"
            f"{sat['max_admitted_in_any_window']:>12}{edge['max_admitted_in_any_window']:>8}"
        )
    print(f"(max/window, edges: most admissions in any sliding {PERIOD:g} s window; limit {LIMIT})")


if __name__ == "__main__":
    main()
