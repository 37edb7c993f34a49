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


def test_old_token_committing_after_a_new_one_claimed_is_caught():
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
    assert "token 1 began a commit at 5.5" in verdict.violations[0], verdict


def test_old_token_far_below_is_caught_across_tokens():
    """Token 1 commits after tokens 2 and 3 did (only the walk over all higher tokens sees it)."""
    verdict = check_audit(
        [seg("a", 1, 0, 1), seg("a", 2, 2, 3, pid=2), seg("a", 3, 4, 5, pid=3), seg("a", 1, 6, 7)]
    )
    assert not verdict.valid
    assert any(v.startswith("a: token 1 began") for v in verdict.violations), verdict


def test_claim_waiting_for_the_lock_while_the_old_owner_commits_is_not_flagged():
    """Seen in a real run: token 5's claim asked for the lock at .5213 and had it committed
    by .5216; token 4 committed a write in [.5215, .5215] meanwhile. SQLite's lock orders
    them (4 first), and the brackets overlap: no violation."""
    verdict = check_audit(
        [
            claim("a", 4, 0.520730, 0.521144, pid=1),
            claim("a", 5, 0.521269, 0.521626, pid=3),
            seg("a", 4, 0.521487, 0.521525, pid=1),
            seg("a", 5, 0.521995, 0.522001, pid=3),
        ]
    )
    assert verdict.valid, verdict


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
