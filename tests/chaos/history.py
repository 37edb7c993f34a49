"""History of a chaos run: one invoke and one completion (ok, fail or info) per operation.

Times are the client's ``time.monotonic()``. ``info`` means indeterminate: the client
gave up without an answer, so the operation may or may not have taken effect (Jepsen's
vocabulary). An operation never completed is treated as ``info`` by the checker.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

INFINITY = float("inf")


@dataclass
class Op:
    """One client operation on one key."""

    id: int
    process: str
    key: str
    f: str  # register: read, write, cas; ledger: add
    args: Any
    call: float
    ret: float = INFINITY
    type: str = "invoke"  # then ok, fail or info
    result: Any = None
    attempts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.type == "ok"


class History:
    """Recorder of operations, in invoke order."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def invoke(self, process: str, key: str, f: str, args: Any) -> Op:
        op = Op(len(self.ops), process, key, f, args, time.monotonic())
        self.ops.append(op)
        return op

    def complete(self, op: Op, kind: str, result: Any = None) -> None:
        """Record the completion of ``op``: ``ok``, ``fail`` (did not happen) or ``info``."""
        assert kind in ("ok", "fail", "info"), kind
        op.type = kind
        op.result = result
        op.ret = time.monotonic() if kind != "info" else INFINITY

    def by_key(self, prefix: str = "") -> dict[str, list[Op]]:
        keys: dict[str, list[Op]] = {}
        for op in self.ops:
            if op.key.startswith(prefix):
                keys.setdefault(op.key, []).append(op)
        return keys

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.type] = counts.get(op.type, 0) + 1
        return counts

    def dump(self, path: Path) -> None:
        """Write the history as JSON lines (``ret`` null for indeterminate ones)."""
        with open(path, "w") as out:
            for op in self.ops:
                row = asdict(op)
                row["ret"] = None if op.ret == INFINITY else op.ret
                out.write(json.dumps(row) + "\n")


def op(
    id: int, key: str, f: str, args: Any, call: float, ret: float | None, kind: str, result=None
) -> Op:
    """An operation written by hand (the checker's tests): ``ret`` None is indeterminate."""
    return Op(id, f"p{id}", key, f, args, call, INFINITY if ret is None else ret, kind, result)
