"""The benchmark suite's one entry point: run every benchmark, then write the report.

Every ``bench/<name>.py`` that does not start with ``_`` (except this file and
``report.py``) is a benchmark: it measures its figures beside their baselines in the
same run and writes ``bench/results/<name>.json``. This runner starts them one after the
other (each in its own process, so one failing does not stop the others), shows their
progress lines as they come, and then calls ``report.py`` for ``bench/RESULTS.md`` and
the PNG plots in ``bench/plots/``.

    .venv/bin/python bench/run.py [--quick] [--only core_calls,scaling]

``--quick`` passes ``--quick`` to every benchmark (the whole suite then finishes in
about three minutes on a 2-core machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"run", "report"}
# A benchmark that runs longer than this is stopped and reported as failed.
TIMEOUT_S = {"quick": 300, "full": 3600}


def discover() -> list[str]:
    names = sorted(
        p.stem
        for p in BENCH.glob("*.py")
        if not p.stem.startswith("_") and p.stem not in NOT_BENCHMARKS
    )
    # The in-process figures first: they are the quickest and the least noisy.
    order = ["core_calls", "scaling", "cluster_calls", "ws_broadcast"]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def run_one(name: str, quick: bool) -> tuple[bool, float]:
    argv = [sys.executable, str(BENCH / f"{name}.py")] + (["--quick"] if quick else [])
    started = time.monotonic()
    print(f"\n=== {name}{' (quick)' if quick else ''} ===", flush=True)
    try:
        # Output is not captured: the benchmark's progress lines appear as they come.
        timeout = TIMEOUT_S["quick" if quick else "full"]
        done = subprocess.run(argv, cwd=BENCH.parent, timeout=timeout)
        ok = done.returncode == 0
    except subprocess.TimeoutExpired:
        print(f"!!! {name} timed out", flush=True)
        ok = False
    elapsed = time.monotonic() - started
    print(f"=== {name}: {'ok' if ok else 'FAILED'} in {elapsed:.1f} s ===", flush=True)
    return ok, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark's quick mode")
    parser.add_argument("--only", help="comma-separated benchmark names")
    args = parser.parse_args()
    names = discover()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmarks {unknown}; known: {names}")
        names = [n for n in names if n in wanted]
    print(f"benchmarks: {', '.join(names)}", flush=True)
    started = time.monotonic()
    outcome = {name: run_one(name, args.quick) for name in names}
    report = subprocess.run([sys.executable, str(BENCH / "report.py")], cwd=BENCH.parent)
    print(f"\nsuite finished in {time.monotonic() - started:.0f} s")
    for name, (ok, elapsed) in outcome.items():
        print(f"  {name:<16} {'ok' if ok else 'FAILED':<7} {elapsed:7.1f} s")
    failed = [n for n, (ok, _) in outcome.items() if not ok]
    return 1 if failed or report.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
