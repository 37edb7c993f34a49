"""``python -m tests.chaos [--seconds N] [--seed S] [--workdir DIR]``: one chaos run.

Prints the summary (and writes ``summary.json``, ``history.jsonl``, the audit logs and
the hosts' logs into the work directory); exits 1 on any checker violation.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .driver import ChaosRun, Config, format_summary


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", 180))
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", 1)))
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    run = ChaosRun(Config(seconds=args.seconds, seed=args.seed, workdir=args.workdir))
    summary = run.main()
    print(format_summary(summary), flush=True)
    return 0 if summary["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
