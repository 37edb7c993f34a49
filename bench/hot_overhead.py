"""The cost of hot-object detection (issue 22) on in-process calls, in one run.

One embedded host; calls to one ``demo.Counter`` that write nothing (``value``) and that
write once (``increment``), 1 caller and 16 callers, in alternating rounds with
detection on (``HotObjects``) and off (``DisabledHotObjects``), so both see the same
machine load. Prints the median calls/s of each and the overhead, and the cost of the
turn hook alone (ns per call of ``HotObjects.turn``).

    .venv/bin/python bench/hot_overhead.py [--rounds 6] [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core_calls import setup_django  # noqa: E402


async def rate(stub, method: str, calls: int, callers: int) -> float:
    per = calls // callers

    async def caller() -> None:
        fn = getattr(stub, method)
        for _ in range(per):
            await fn()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return per * callers / (time.perf_counter() - started)


def hook_cost(n: int = 500_000) -> float:
    from durable_core.hot import HotObjects

    tracker = HotObjects({}.get)
    keys = [f"ns:{i}" for i in range(100)]
    started = time.perf_counter()
    for i in range(n):
        tracker.turn(keys[i % 100], 0.0001)
    return (time.perf_counter() - started) / n


async def run(rounds: int, calls: int) -> None:
    from durable_core.host import start_host, stop_host
    from durable_core.hot import DisabledHotObjects, HotObjects
    from durable_core.registry import get_namespace

    host = await start_host()
    on, off = host.hot, DisabledHotObjects(host.active.get)
    assert isinstance(on, HotObjects) and on.enabled
    stub = get_namespace("demo.Counter").get_by_name("bench-hot")
    await stub.increment()
    figures: dict[tuple[str, int, str], list[float]] = {}
    try:
        for _ in range(rounds):
            for method in ("value", "increment"):
                for callers in (1, 16):
                    for label, tracker in (("on", on), ("off", off)):
                        host.hot = tracker
                        figures.setdefault((method, callers, label), []).append(
                            await rate(stub, method, calls, callers)
                        )
    finally:
        host.hot = on
        await stop_host()
    print(f"hook alone: {hook_cost() * 1e9:.0f} ns per turn")
    print(f"{'calls':<22}{'on (calls/s)':>14}{'off (calls/s)':>15}{'overhead':>10}")
    for method in ("value", "increment"):
        for callers in (1, 16):
            with_it = statistics.median(figures[(method, callers, "on")])
            without = statistics.median(figures[(method, callers, "off")])
            name = f"{'read' if method == 'value' else 'one write'}, {callers} caller(s)"
            print(f"{name:<22}{with_it:>14.0f}{without:>15.0f}{(without / with_it - 1):>10.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as var:
        setup_django(Path(var))
        asyncio.run(run(args.rounds, args.calls))


if __name__ == "__main__":
    main()
