"""``manage.py simulate``: run seeded simulations of a cluster (``durable_core.testing.
simulation``); every failure prints the line that replays it exactly."""

from __future__ import annotations

import logging
import os
import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run seeded, deterministic simulations of hosts, faults and clients."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, help="replay this one seed")
        parser.add_argument("--seeds", type=int, default=20, help="run seeds FIRST..FIRST+N-1")
        parser.add_argument("--first", type=int, default=1)
        parser.add_argument("--trace", action="store_true", help="print each run's trace")
        parser.add_argument(
            "--vary", action="store_true", help="draw hosts, objects and clients from the seed"
        )

    def handle(self, *args, **options):
        from durable_core.testing.simulation import run_seed, varied_shape

        if os.environ.get("PYTHONHASHSEED") != "0":
            self.stderr.write("note: set PYTHONHASHSEED=0 for runs that replay exactly")
        logging.disable(logging.CRITICAL)
        first = options["first"]
        seeds = (
            [options["seed"]]
            if options["seed"] is not None
            else range(first, first + options["seeds"])
        )
        started, failed = time.perf_counter(), 0
        for seed in seeds:
            report = run_seed(seed, **(varied_shape(seed) if options["vary"] else {}))
            status = "ok" if report.ok else "FAILED"
            self.stdout.write(
                f"seed {seed}: {status} ({report.ops} ops, {report.acknowledged} acknowledged, "
                f"{report.virtual_seconds:.1f} virtual s in {report.real_seconds:.2f} s, "
                f"digest {report.digest})"
            )
            if options["trace"]:
                self.stdout.write("\n".join(report.trace))
            if not report.ok:
                failed += 1
                for failure in report.failures[:10]:
                    self.stdout.write(f"  {failure}")
                self.stdout.write(
                    "  replay: PYTHONHASHSEED=0 python manage.py simulate "
                    f"--seed {seed} --trace{' --vary' if options['vary'] else ''}"
                )
        elapsed = time.perf_counter() - started
        count = len(seeds)
        self.stdout.write(
            f"{count - failed} passed, {failed} failed ({count / elapsed * 60:.0f} scenarios/min)"
        )
        if failed:
            raise CommandError(f"{failed} of {count} seeds failed")
