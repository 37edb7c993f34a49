"""The short chaos run of ``make test``: 3 hosts, every fault kind, all checkers green."""

from __future__ import annotations

import os

import pytest

from .driver import KINDS, ChaosRun, Config, format_summary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(170)]

SECONDS = float(os.environ.get("CHAOS_SHORT_SECONDS", "34"))


def test_short_chaos_run_is_linearizable_exact_and_single_owner(tmp_path):
    """A seeded 34 s run with every fault kind (kill -9, kill -STOP past the lease TTL,
    Redis restarted empty, a front killed with sockets open, SIGTERM of a loaded host, a
    busy object destroyed while its owner is frozen, turns cut by their time limit, a
    full disk on one host): every register history linearizable, every ledger exact,
    every scratch ledger without double apply or loss, the single-owner audit clean, the
    front-kill WebSocket checks passed, every failover recovered, every SIGTERM exit
    within lease TTL + 2 s, no cut turn acknowledged."""
    config = Config(
        seconds=SECONDS,
        seed=int(os.environ.get("CHAOS_SEED", "11")),
        workdir=tmp_path / "chaos",
        registers=3,
        register_clients=3,
        ledgers=2,
        ledger_clients=2,
        scratches=2,
        scratch_clients=1,
        sigterm_burst=12,
        think=(0.03, 0.1),
        fault_gap=(0.3, 0.8),
    )
    summary = ChaosRun(config).main()
    report = format_summary(summary)
    print("\n" + report)
    assert summary["valid"], report
    assert set(summary["faults"]) == set(KINDS), f"not every fault kind ran:\n{report}"
    assert summary["registers"]["ops_checked"] > 200 and summary["ledgers"]["keys"] == 2, report
    assert summary["audit"]["records"] > 100, report


def test_the_checkers_catch_a_server_without_fencing(tmp_path):
    """The same run against a deliberately broken server (no storage fence, no lease
    deadline, lost leases never noticed: tests/chaos/settings_unfenced.py) with kill -STOP
    faults only: the owner frozen past its lease keeps serving from memory after another
    host took over, and the run must come out invalid, the audit flagging it."""
    config = Config(
        seconds=float(os.environ.get("CHAOS_UNFENCED_SECONDS", "14")),
        seed=2,
        workdir=tmp_path / "chaos",
        registers=3,
        register_clients=3,
        ledgers=1,
        ledger_clients=2,
        kinds=("pause",),
        settings="tests.chaos.settings_unfenced",
        attempt_timeout=10.0,
        impatient_timeout=1.0,
        op_deadline=20.0,
        fault_gap=(1.0, 2.0),
    )
    summary = ChaosRun(config).main()
    report = format_summary(summary)
    print("\n" + report)
    assert not summary["valid"], f"a server without fencing passed every check:\n{report}"
    assert summary["audit"]["violations"], report
