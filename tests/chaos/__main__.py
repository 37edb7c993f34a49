"""``python -m tests.chaos [--seconds N] [--seed S] [--workdir DIR]``: one chaos run.

Prints the summary (and writes ``summary.json``, ``history.jsonl``, the audit logs and
the hosts' logs into the work directory); exits 1 on any checker violation.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .driver import KINDS, ChaosRun, Config, format_summary


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", 180))
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", 1)))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated fault kinds to inject (default: all of {', '.join(KINDS)})",
    )
    parser.add_argument(
        "--unfenced",
        action="store_true",
        help="run a deliberately broken server (no fence, no lease deadline) to see the "
        "checkers catch it; only kill -STOP faults, clients that wait them out",
    )
    args = parser.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    config = Config(seconds=args.seconds, seed=args.seed, workdir=args.workdir, kinds=kinds)
    if args.unfenced:
        config.settings = "tests.chaos.settings_unfenced"
        config.kinds = ("pause",)
        # Half the clients wait out the pause, so that the frozen owner's answers reach
        # them; the other half move on and write through the new owner meanwhile.
        config.attempt_timeout, config.impatient_timeout, config.op_deadline = 10.0, 1.0, 20.0
    run = ChaosRun(config)
    summary = run.main()
    print(format_summary(summary), flush=True)
    return 0 if summary["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
