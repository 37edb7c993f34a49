"""The single-owner audit checker catches overlapping and shrinking tokens."""

from __future__ import annotations

from .audit import check_audit


def seg(key, token, s, c, e=None, pid=1):
    return {"ev": "seg", "k": key, "t": token, "s": s, "c": c, "e": c if e is None else e, "p": pid}


def claim(key, token, s, c, pid=1):
    return {"ev": "claim", "k": key, "t": token, "s": s, "c": c, "p": pid}


def test_clean_handover_passes():
    verdict = check_audit(
        [
            seg("a", 1, 0, 1),
            seg("a", 1, 2, 3),
            claim("a", 2, 5, 5.1, pid=2),
            seg("a", 2, 6, 7, pid=2),
            seg("b", 4, 0, 9),
        ]
    )
    assert verdict.valid, verdict
    assert verdict.objects == 2 and verdict.tokens == 3 and verdict.late_emissions == 0


def test_old_token_committing_after_a_new_one_started_is_caught():
    """A paused old owner commits once more after the new owner claimed the storage."""
    verdict = check_audit(
        [
            seg("a", 1, 0, 1),
            claim("a", 2, 5, 5.1, pid=2),
            seg("a", 1, 5.5, 6),
            seg("a", 2, 7, 8, pid=2),
        ]
    )
    assert not verdict.valid
    assert "token 1 committed" in verdict.violations[0]


def test_overlapping_commit_windows_are_caught():
    verdict = check_audit([seg("a", 1, 0, 2), seg("a", 2, 1, 3, pid=2)])
    assert not verdict.valid


def test_token_going_down_is_caught():
    """Token 3 commits, then token 2 does (tokens must only grow)."""
    verdict = check_audit([seg("a", 3, 0, 1), seg("a", 2, 2, 3, pid=2)])
    assert not verdict.valid


def test_one_token_in_two_processes_is_caught():
    verdict = check_audit([seg("a", 3, 0, 1, pid=1), seg("a", 3, 2, 3, pid=2)])
    assert not verdict.valid
    assert "used by processes" in verdict.violations[0]


def test_late_emission_is_counted_not_judged():
    verdict = check_audit([seg("a", 1, 0, 1, e=6), claim("a", 2, 5, 5.1, pid=2)])
    assert verdict.valid and verdict.late_emissions == 1


def test_real_hook_writes_checkable_lines(tmp_path, monkeypatch):
    """durable_core.audit writes lines this checker reads."""
    from durable_core import audit as hook

    from .audit import load

    path = tmp_path / "audit.jsonl"
    monkeypatch.setattr(hook, "_PATH", str(path))
    monkeypatch.setattr(hook, "_fd", None)
    hook.claim("ns:1", 1, 1.0, 1.5)
    hook.segment("ns:1", 1, 2.0, 2.5, 2.6, True)
    records = load([path])
    assert [r["ev"] for r in records] == ["claim", "seg"]
    assert check_audit(records).valid
