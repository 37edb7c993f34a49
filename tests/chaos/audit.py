"""Checker of the single-owner audit logs written by ``durable_core.audit``.

Per object, each token's commit windows (a storage claim, or a segment from its fence
check to its commit) are gathered into one span, from the token's first start to its last
commit. Only one token at a time committed, and tokens only grew, exactly when these
spans, taken in token order, are disjoint and in time order: token t's last commit comes
before token t+k's first start. A token used by two processes for one object is a
violation too. All times are CLOCK_MONOTONIC of one machine, so they compare across
processes.

Emissions are reported, not judged: the output gate checks the lease right before the
commit, and releasing the replies takes a few awaits more, so a host frozen in between
releases them late (the reply still carries data committed under a valid lease). Such
segments are counted as ``late_emissions``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AuditVerdict:
    """The audit's answer over all objects."""

    objects: int = 0
    tokens: int = 0
    records: int = 0
    late_emissions: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.violations


def load(paths: list[Path]) -> list[dict]:
    """Every record of the given logs (a line torn by a kill -9 is skipped)."""
    records = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def check_audit(records: list[dict]) -> AuditVerdict:
    """Check the records of every host of one run."""
    verdict = AuditVerdict(records=len(records))
    per_object: dict[str, list[dict]] = {}
    for record in records:
        per_object.setdefault(record["k"], []).append(record)
    verdict.objects = len(per_object)
    for key, rows in sorted(per_object.items()):
        spans: dict[int, list[float]] = {}  # token -> [first start, last commit, last emit]
        pids: dict[int, set[int]] = {}
        for row in rows:
            token = row["t"]
            pids.setdefault(token, set()).add(row["p"])
            span = spans.setdefault(token, [row["s"], row["c"], row.get("e", row["c"])])
            span[0] = min(span[0], row["s"])
            span[1] = max(span[1], row["c"])
            span[2] = max(span[2], row.get("e", row["c"]))
        verdict.tokens += len(spans)
        for token, owners in pids.items():
            if len(owners) > 1:
                verdict.violations.append(
                    f"{key}: token {token} used by processes {sorted(owners)}"
                )
        ordered = sorted(spans.items())
        for (low, low_span), (high, high_span) in itertools.pairwise(ordered):
            if low_span[1] >= high_span[0]:
                verdict.violations.append(
                    f"{key}: token {low} committed at {low_span[1]:.6f}, after token {high} "
                    f"started at {high_span[0]:.6f}"
                )
            if low_span[2] >= high_span[0]:
                verdict.late_emissions += 1
    return verdict
