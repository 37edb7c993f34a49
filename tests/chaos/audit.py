"""Checker of the single-owner audit logs written by ``durable_core.audit``.

Every record brackets one commit in time: a storage claim between ``s`` (before it asked
for the write lock) and ``c`` (after its commit), a segment between ``s`` (before its
commit began) and ``c`` (after it). A commit happened somewhere inside its bracket; the
brackets are CLOCK_MONOTONIC of one machine, so they compare across processes.

Only one token at a time committed, and tokens only grew, exactly when no commit of a
lower token happened after a commit of a higher one. The audit flags every pair where it
provably did: a record of token ``low`` that began (``s``) after a record of a higher
token had finished committing (``c``). (A writing segment holds the SQLite write lock
from its first write, before ``s``, so a higher claim cannot slip between its fence check
and its commit either.) Brackets that merely overlap cannot be ordered and are not
flagged: a claim waiting for the lock while the old owner finishes a commit is normal.
A token used by two processes for one object is a violation too.

Emissions are reported, not judged: the output gate checks the lease right before the
commit, and releasing the replies takes a few awaits more, so a host frozen in between
releases them late (the reply still carries data committed under a valid lease). Such
tokens are counted as ``late_emissions``: their last release finished after a higher
token's first commit.
"""

from __future__ import annotations

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
        spans: dict[int, dict[str, float]] = {}  # token -> latest start, first/last commit
        pids: dict[int, set[int]] = {}
        for row in rows:
            token = row["t"]
            pids.setdefault(token, set()).add(row["p"])
            emitted = row.get("e", row["c"])
            span = spans.setdefault(
                token, {"last_s": row["s"], "first_c": row["c"], "last_e": emitted}
            )
            span["last_s"] = max(span["last_s"], row["s"])
            span["first_c"] = min(span["first_c"], row["c"])
            span["last_e"] = max(span["last_e"], emitted)
        verdict.tokens += len(spans)
        for token, owners in pids.items():
            if len(owners) > 1:
                verdict.violations.append(
                    f"{key}: token {token} used by processes {sorted(owners)}"
                )
        # Walk tokens downwards, keeping the earliest commit of any higher token.
        earliest_higher: tuple[float, int] | None = None
        for token, span in sorted(spans.items(), reverse=True):
            if earliest_higher is not None:
                first_c, higher = earliest_higher
                if span["last_s"] > first_c:
                    verdict.violations.append(
                        f"{key}: token {token} began a commit at {span['last_s']:.6f}, after "
                        f"token {higher} had committed at {first_c:.6f}"
                    )
                if span["last_e"] > first_c:
                    verdict.late_emissions += 1
            if earliest_higher is None or span["first_c"] < earliest_higher[0]:
                earliest_higher = (span["first_c"], token)
    return verdict
