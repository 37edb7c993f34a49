"""Scaling curves of the embedded runtime: throughput vs callers, cold activation vs
existing objects, and host memory vs active and idle objects.

* callers: calls/s on one ``demo.Counter`` with 1 … 256 concurrent callers (reads and
  one-write turns), each point beside an ``asyncio.Queue`` round trip at the same
  concurrency (the floor of an in-process call).
* activation: with N objects already stored (1k → 100k; files on disk, records in the
  Django database, none in memory), the latency of the first call to a random existing
  object (activation: lease, fence check, open of its SQLite file, ``on_start``, the
  read) beside the floor of opening that same file with ``sqlite3`` and reading a row.
* memory: a fresh process per point activates N objects (1k → 20k, each with one
  stored key) and reports its resident set size per active object; then evicts them all
  and reports what an idle object still costs: residual RSS and Python heap blocks per
  object (allocators keep freed pages, so RSS is an upper bound) and bytes on disk.

Writes bench/results/scaling.json.

    .venv/bin/python bench/scaling.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PROTOCOL, emit, machine, percentile, progress, rounded, save_result, versions
from core_calls import object_calls, queue_baseline, setup_django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NAMESPACE = "demo.Counter"
CREATE_CONCURRENCY = 64
WARMUP_OBJECTS = 600  # more than the 512 open stores the host keeps


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


async def evict_all() -> int:
    from durable_core.host import get_host

    host = get_host()
    actives = list(host.active.values())
    for active in actives:
        await active.evict("benchmark")
    return len(actives)


async def create(names: list[str]) -> None:
    """One write to each named object, ``CREATE_CONCURRENCY`` at a time."""
    from durable_core.registry import get_namespace

    namespace = get_namespace(NAMESPACE)
    queue = list(names)

    async def worker() -> None:
        while queue:
            await namespace.get_by_name(queue.pop()).increment()

    await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))


# -- curve 1: throughput vs concurrent callers --------------------------------------------


async def callers_curve(points: list[int], calls: int, repeats: int) -> list[dict]:
    out = []
    for callers in points:
        runs: dict[str, list[float]] = {"queue": [], "read": [], "write": []}
        for r in range(repeats):
            runs["queue"].append(await queue_baseline(calls, callers))
            runs["read"].append(await object_calls("value", calls, callers, f"c{callers}-{r}"))
            runs["write"].append(await object_calls("increment", calls, callers, f"c{callers}"))
        med = {k: statistics.median(v) for k, v in runs.items()}
        out.append(
            {
                "callers": callers,
                "queue_calls_per_s": med["queue"],
                "read_calls_per_s": med["read"],
                "write_calls_per_s": med["write"],
                "read_ratio": med["read"] / med["queue"],
                "write_ratio": med["write"] / med["queue"],
            }
        )
        progress(
            f"callers {callers}: read {med['read']:,.0f}/s, write {med['write']:,.0f}/s "
            f"(queue {med['queue']:,.0f}/s)"
        )
    return out


# -- curve 2: cold activation vs existing objects -----------------------------------------


def sqlite_open_floor(paths: list[Path]) -> list[float]:
    """Open each file, read one row, close: the floor under a cold activation."""
    times = []
    for path in paths:
        start = time.perf_counter()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode").fetchone()
        conn.execute("SELECT * FROM sqlite_master LIMIT 1").fetchall()
        conn.close()
        times.append(time.perf_counter() - start)
    return times


async def activation_curve(sizes: list[int], samples: int, storage_dir: Path) -> list[dict]:
    from durable_core.registry import get_namespace
    from durable_core.storage.files import object_path

    namespace = get_namespace(NAMESPACE)
    made = 0
    out = []
    rng = random.Random(7)
    for size in sizes:
        started = time.monotonic()
        while made < size:
            batch = [f"obj-{i}" for i in range(made, min(size, made + 2000))]
            await create(batch)
            await evict_all()
            made += len(batch)
        progress(f"activation: {size:,} objects stored ({time.monotonic() - started:.1f} s)")
        picked = rng.sample(range(size), samples)
        latencies = []
        for i in picked:
            stub = namespace.get_by_name(f"obj-{i}")
            start = time.perf_counter()
            await stub.value()
            latencies.append(time.perf_counter() - start)
        await evict_all()
        paths = [
            object_path(storage_dir, NAMESPACE, namespace.id_from_name(f"obj-{i}").hex)
            for i in rng.sample(range(size), samples)
        ]
        floor = sqlite_open_floor(paths)
        latencies.sort()
        floor.sort()
        point = {
            "objects": size,
            "samples": samples,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p90_ms": percentile(latencies, 90) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "sqlite_open_p50_ms": percentile(floor, 50) * 1000,
            "ratio_p50": percentile(latencies, 50) / percentile(floor, 50),
        }
        out.append(point)
        progress(
            f"activation with {size:,} stored: p50 {point['p50_ms']:.2f} ms, p99 "
            f"{point['p99_ms']:.2f} ms (sqlite open {point['sqlite_open_p50_ms']:.3f} ms)"
        )
    return out


# -- curve 3: memory (one fresh process per point) ------------------------------------------


async def memory_point(count: int, storage_dir: Path) -> dict:
    from durable_core.host import get_host

    # Warm-up: imports, caches and the open-store LRU (512 files) filled before the
    # baseline, so the figures are the cost of one more object.
    await create([f"warm{i}" for i in range(WARMUP_OBJECTS)])
    await evict_all()
    gc.collect()
    rss0, blocks0, disk0 = rss_bytes(), sys.getallocatedblocks(), disk_bytes(storage_dir)
    await create([f"m{i}" for i in range(count)])
    gc.collect()
    rss1 = rss_bytes()
    active = len(get_host().active)
    await evict_all()
    gc.collect()
    rss2, blocks2 = rss_bytes(), sys.getallocatedblocks()
    disk = disk_bytes(storage_dir) - disk0
    return {
        "objects": count,
        "active_after_create": active,
        "rss_per_active_object_bytes": (rss1 - rss0) / count,
        "rss_per_idle_object_bytes": max(0, rss2 - rss0) / count,
        "python_blocks_per_idle_object": (blocks2 - blocks0) / count,
        "disk_bytes_per_idle_object": disk / count,
    }


def memory_worker(count: str) -> None:
    var = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    setup_django(var)
    from durable_core.testing import object_host

    storage = var / "objects"

    async def run() -> dict:
        # Nothing leaves memory on its own during the measurement.
        async with object_host(storage, IDLE_TIMEOUT=3600):
            return await memory_point(int(count), storage)

    try:
        emit(asyncio.run(run()))
    finally:
        shutil.rmtree(var, ignore_errors=True)


def memory_curve(sizes: list[int]) -> list[dict]:
    out = []
    for size in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--role", "memory", str(size)],
            capture_output=True,
            timeout=600,
            cwd=ROOT,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(PROTOCOL)]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"memory worker {size} failed:\n{done.stderr.decode()[-3000:]}")
        point = json.loads(lines[-1][len(PROTOCOL) :])
        out.append(point)
        progress(
            f"memory with {size:,} active: {point['rss_per_active_object_bytes'] / 1024:.1f} KiB "
            f"RSS each; idle: {point['python_blocks_per_idle_object']:.2f} heap blocks, "
            f"{point['disk_bytes_per_idle_object'] / 1024:.1f} KiB disk each"
        )
    return out


# -- the run --------------------------------------------------------------------------------


async def run(quick: bool, var: Path) -> dict:
    from durable_core.testing import object_host

    params = {
        "quick": quick,
        "callers": [1, 16, 256] if quick else [1, 4, 16, 64, 256],
        "calls_per_point": 2000 if quick else 10000,
        "repeats": 3,
        "activation_sizes": [500, 2000] if quick else [1000, 10000, 100000],
        "activation_samples": 100 if quick else 300,
        "memory_sizes": [500, 2000] if quick else [1000, 5000, 10000, 20000],
    }
    load = [os.getloadavg()[0]]
    storage = var / "objects"
    async with object_host(storage, IDLE_TIMEOUT=3600):
        callers = await callers_curve(
            params["callers"], params["calls_per_point"], params["repeats"]
        )
    async with object_host(var / "activation", IDLE_TIMEOUT=3600):
        activation = await activation_curve(
            params["activation_sizes"], params["activation_samples"], var / "activation"
        )
    memory = memory_curve(params["memory_sizes"])
    load.append(os.getloadavg()[0])
    return {
        "benchmark": "scaling",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(load),
        "versions": versions(),
        "params": params,
        "curves": {
            "throughput_vs_callers": {
                "x": "callers",
                "unit": "calls/s (median of repeats)",
                "points": callers,
            },
            "cold_activation_vs_objects": {
                "x": "objects",
                "unit": "ms per first call to a random stored object",
                "points": activation,
            },
            "memory_vs_active_objects": {
                "x": "objects",
                "unit": "bytes per object",
                "points": memory,
            },
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)  # worker processes
    args = parser.parse_args()
    if args.role:
        memory_worker(*args.role[1:])
        return
    var = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    setup_django(var)
    started = time.monotonic()
    try:
        result = asyncio.run(run(args.quick, var))
    finally:
        shutil.rmtree(var, ignore_errors=True)  # 100,000 object files in full mode
    result["wall_time_s"] = time.monotonic() - started
    path = save_result("scaling", rounded(result))
    print(f"\nwall time {result['wall_time_s']:.1f} s; wrote {path}")


if __name__ == "__main__":
    main()
