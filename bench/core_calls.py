"""Core call throughput: durable object calls vs an asyncio-queue baseline, in one run.

Prints calls/s for: an asyncio.Queue request/reply round trip (the floor of any
in-process actor), calls to one object that write nothing, calls with one storage write
each, and a bare SQLite commit per write at the same durability (the storage floor),
each with 1 and with many concurrent callers. Ratios are against the baseline measured
in the same run. Writes bench/results/core_calls.json.

    python bench/core_calls.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import save_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(var_dir: Path) -> None:
    os.environ["VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DURABLE_LOG"] = "WARNING"
    os.environ.setdefault("DJANGO_DEBUG", "0")  # no query log growing in the benchmark
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


async def queue_baseline(calls: int, callers: int) -> float:
    """An actor made of an asyncio.Queue and one consumer task: request + reply future."""
    queue: asyncio.Queue = asyncio.Queue()
    state = {"n": 0}

    async def consumer():
        while True:
            fut, by = await queue.get()
            state["n"] += by
            fut.set_result(state["n"])

    task = asyncio.create_task(consumer())
    loop = asyncio.get_running_loop()

    async def caller(k: int):
        for _ in range(k):
            fut = loop.create_future()
            queue.put_nowait((fut, 1))
            await fut

    rate = await _timed(calls, callers, caller)
    task.cancel()
    return rate


async def _timed(calls: int, callers: int, caller) -> float:
    per = calls // callers
    started = time.perf_counter()
    await asyncio.gather(*(caller(per) for _ in range(callers)))
    return per * callers / (time.perf_counter() - started)


async def object_calls(method: str, calls: int, callers: int, name: str) -> float:
    from durable_core.registry import get_namespace

    stub = get_namespace("demo.Counter").get_by_name(name)
    fn = getattr(stub, method)
    await fn()  # activate

    async def caller(k: int):
        for _ in range(k):
            await fn()

    return await _timed(calls, callers, caller)


def sqlite_floor(path: Path, calls: int, synchronous: str) -> float:
    """One INSERT OR REPLACE + COMMIT per write, WAL, same synchronous level."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID")
    started = time.perf_counter()
    for i in range(calls):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO kv VALUES ('n', ?)", (str(i),))
        conn.execute("COMMIT")
    rate = calls / (time.perf_counter() - started)
    conn.close()
    return rate


async def run(quick: bool) -> dict:
    from durable_core.conf import get_setting
    from durable_core.host import start_host, stop_host

    calls = 4000 if quick else 20000
    repeats = 3 if quick else 5
    many = 64
    synchronous = str(get_setting("SYNCHRONOUS")).upper()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
    await start_host()
    figures: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    try:
        for r in range(repeats):
            add("queue_1", await queue_baseline(calls, 1))
            add(f"queue_{many}", await queue_baseline(calls, many))
            add("read_1", await object_calls("value", calls, 1, f"r{r}"))
            add(f"read_{many}", await object_calls("value", calls, many, f"r{r}"))
            add("write_1", await object_calls("increment", calls // 2, 1, f"w{r}"))
            add(f"write_{many}", await object_calls("increment", calls, many, f"w{r}"))
            add("sqlite_commit", sqlite_floor(tmp / f"floor{r}.db", calls // 2, synchronous))
            print(f"  repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)
    finally:
        await stop_host()
    med = {k: statistics.median(v) for k, v in figures.items()}
    return {
        "benchmark": "core_calls",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version,
        },
        "synchronous": synchronous,
        "calls_per_repeat": calls,
        "repeats": repeats,
        "unit": "calls/s (median of repeats)",
        "figures": {k: round(v) for k, v in med.items()},
        "ratios": {
            "read_1 / queue_1": round(med["read_1"] / med["queue_1"], 3),
            f"read_{many} / queue_{many}": round(med[f"read_{many}"] / med[f"queue_{many}"], 3),
            "write_1 / queue_1": round(med["write_1"] / med["queue_1"], 3),
            f"write_{many} / queue_{many}": round(med[f"write_{many}"] / med[f"queue_{many}"], 3),
            "write_1 / sqlite_commit": round(med["write_1"] / med["sqlite_commit"], 3),
            f"write_{many} / sqlite_commit": round(med[f"write_{many}"] / med["sqlite_commit"], 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="bench-var-"))
    setup_django(var_dir)
    result = asyncio.run(run(args.quick))
    save_result("core_calls", result)
    width = max(len(k) for k in result["figures"])
    print(f"\ncalls/s (median of {result['repeats']}), synchronous={result['synchronous']}")
    for k, v in result["figures"].items():
        print(f"  {k:<{width}}  {v:>10,}")
    print("ratios")
    for k, v in result["ratios"].items():
        print(f"  {k:<32} {v}")


if __name__ == "__main__":
    main()
