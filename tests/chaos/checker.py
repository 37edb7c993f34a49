"""Checkers of a chaos history: linearizability of a CAS register, exactness of a counter.

``check_register`` is the Wing-Gong search with Lowe's memoisation, as Porcupine and
Knossos do it: walk the history's call/return events in time order, linearize a pending
call when the model allows it, backtrack when a return is reached whose call could not be
placed, and never revisit a (set of linearized ops, register value) configuration.
Indeterminate (``info``) operations return at infinity: they may take effect at any point
after their call, or never (linearized after everything else, where nothing observes it).
Failed operations did not happen and are dropped, as are indeterminate reads.

``check_ledger`` compares what the ledger says it applied with what the clients saw:
every acknowledged increment applied exactly once at the position its answer named, no
increment applied twice, nothing applied that no client invoked or that definitely failed.

``check_scratch`` does the same for a ledger that is destroyed now and then: positions
mean nothing across a destroy, so it checks that no id is applied twice, nothing applied
that no client sent, and every add acknowledged after the last destroy was acknowledged
(sent after that moment) is still there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .history import INFINITY, Op

# Configurations explored per key before giving up with an "unknown" verdict.
SEARCH_BUDGET = 2_000_000


@dataclass
class Verdict:
    """The checker's answer for one key."""

    key: str
    valid: bool | None  # None: the search ran out of budget (unknown)
    ops: int
    explored: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why


def _step(state: Any, op: Op) -> tuple[bool, Any]:
    """Apply ``op`` to the register value ``state``: (legal?, new value)."""
    if op.f == "read":
        return state == op.result, state
    if op.f == "write":
        return True, op.args
    if op.f == "cas":
        old, new = op.args
        if op.type != "ok":  # unknown outcome: it succeeds exactly when it could
            return True, new if state == old else state
        if op.result.get("ok"):
            return state == old, new
        return state != old and state == op.result.get("value"), state
    raise ValueError(f"unknown register operation {op.f!r}")


def check_register(key: str, ops: list[Op], initial: Any = None) -> Verdict:
    """Is this single register's history linearizable (starting from ``initial``)?"""
    kept = [o for o in ops if o.type == "ok" or (o.type == "info" and o.f != "read")]
    kept += [o for o in ops if o.type == "invoke" and o.f != "read"]  # never completed: info
    n = len(kept)
    if n == 0:
        return Verdict(key, True, 0)
    # Events: (time, is_return, index). At equal times calls sort first, so that touching
    # operations count as concurrent (never a false alarm from a tie).
    events = []
    for i, o in enumerate(kept):
        events.append((o.call, 0, i))
        events.append((o.ret if o.type == "ok" else INFINITY, 1, i))
    events.sort()
    # A doubly linked list over the events, with a head sentinel at index len(events).
    size = len(events)
    head = size
    nxt = [*range(1, size), -1, 0]
    prv = [head, *range(0, size - 1), -1]
    nxt[size - 1] = -1
    ret_pos = [0] * n
    for pos, (_t, is_ret, i) in enumerate(events):
        if is_ret:
            ret_pos[i] = pos

    def unlink(pos: int) -> None:
        p, q = prv[pos], nxt[pos]
        nxt[p] = q
        if q != -1:
            prv[q] = p

    def relink(pos: int) -> None:
        p, q = prv[pos], nxt[pos]
        nxt[p] = pos
        if q != -1:
            prv[q] = pos

    state = initial
    linearized = 0
    seen: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = []  # (call position, state before it)
    explored = 0
    best = 0
    entry = nxt[head]
    while nxt[head] != -1:
        explored += 1
        if explored > SEARCH_BUDGET:
            return Verdict(key, None, n, explored, ["search budget exhausted"])
        _t, is_ret, i = events[entry]
        if not is_ret:
            legal, new_state = _step(state, kept[i])
            if legal:
                bits = linearized | (1 << i)
                config = (bits, _hashable(new_state))
                if config not in seen:
                    seen.add(config)
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    unlink(entry)
                    unlink(ret_pos[i])
                    best = max(best, len(stack))
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            if not stack:
                return Verdict(key, False, n, explored, [_explain(kept, events, best)])
            entry, state = stack.pop()
            _t, _r, i = events[entry]
            linearized &= ~(1 << i)
            relink(ret_pos[i])
            relink(entry)
            entry = nxt[entry]
    return Verdict(key, True, n, explored)


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, list | dict) else repr(value)


def _explain(kept: list[Op], events: list, best: int) -> str:
    ordered = sorted(kept, key=lambda o: o.call)
    sample = "; ".join(_show(o) for o in ordered[: min(len(ordered), 12)])
    return f"no linearization (at most {best} of {len(kept)} ops placed); first ops: {sample}"


def _show(o: Op) -> str:
    ret = "inf" if o.ret == INFINITY else f"{o.ret:.3f}"
    return f"{o.process} {o.f}{o.args!r}->{o.type}:{o.result!r} [{o.call:.3f},{ret}]"


def check_ledger(key: str, ops: list[Op], applied: list[str], count: int) -> Verdict:
    """Does the ledger's final list of applied increments agree with the clients?

    ``applied``: the increment ids the ledger applied, in order, duplicates kept;
    ``count``: its counter. Acknowledged ``add`` results are the count after applying.
    """
    problems = []
    times = Counter(applied)
    invoked = {o.args: o for o in ops}
    for op_id, k in times.items():
        if k > 1:
            problems.append(f"increment {op_id} applied {k} times")
        if op_id not in invoked:
            problems.append(f"increment {op_id} applied but never invoked")
        elif invoked[op_id].type == "fail":
            problems.append(f"increment {op_id} applied but its call definitely failed")
    if count != len(applied):
        problems.append(f"counter is {count} but {len(applied)} increments are listed")
    answers: dict[int, str] = {}
    for o in ops:
        if not o.ok:
            continue
        if times[o.args] == 0:
            problems.append(f"acknowledged increment {o.args} (answer {o.result}) is missing")
            continue
        if o.result in answers:
            problems.append(f"increments {answers[o.result]} and {o.args} both answered {o.result}")
        answers[o.result] = o.args
        position = applied.index(o.args) + 1
        if position != o.result:
            problems.append(f"increment {o.args} answered {o.result} but was applied as {position}")
    return Verdict(key, not problems, len(ops), problems=problems)


def check_scratch(key: str, ops: list[Op], applied: list[str], count: int) -> Verdict:
    """Does a destroyed-now-and-then ledger's final list agree with the clients?

    ``ops``: its ``add`` (args: the id) and ``destroy`` operations; ``applied``: the ids
    its last incarnation applied, in order, duplicates kept; ``count``: its counter. An
    add sent after the last acknowledged destroy returned, and acknowledged, must be
    there; when a destroy is indeterminate no add can be required (it may strike at any
    time), and the verdict says so.
    """
    problems = []
    adds = {o.args: o for o in ops if o.f == "add"}
    destroys = [o for o in ops if o.f == "destroy"]
    times = Counter(applied)
    for op_id, k in times.items():
        if k > 1:
            problems.append(f"add {op_id} applied {k} times")
        if op_id not in adds:
            problems.append(f"add {op_id} applied but never sent")
        elif adds[op_id].type == "fail":
            problems.append(f"add {op_id} applied but its call definitely failed")
    if count != len(applied):
        problems.append(f"counter is {count} but {len(applied)} adds are listed")
    notes = []
    if any(not o.ok for o in destroys):
        notes.append("a destroy is indeterminate: no add required")
    else:
        since = max((o.ret for o in destroys), default=float("-inf"))
        for o in adds.values():
            if o.ok and o.call > since and times[o.args] == 0:
                problems.append(f"add {o.args} acknowledged after the last destroy is missing")
    return Verdict(key, not problems, len(ops), problems=problems, notes=notes)
