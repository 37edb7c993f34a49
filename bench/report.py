"""Turn ``bench/results/*.json`` into ``bench/RESULTS.md`` and PNG plots in ``bench/plots/``.

The headline table puts every figure beside the baseline it was measured against in the
same run, with the ratio; the curves become plots. Benchmarks this file does not know
still appear, with their ``ratios`` listed as they are.

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PLOTS = BENCH / "plots"

Row = tuple[str, str, str, str, str]  # what, ours, baseline, ratio, how to read it


def load() -> dict[str, dict]:
    found = {}
    for path in sorted(RESULTS.glob("*.json")):
        try:
            found[path.stem] = json.loads(path.read_text())
        except ValueError as exc:
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
    return found


def num(value: float, unit: str = "") -> str:
    if value is None:
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,} {unit}".strip()
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}×" if base else "–"


# -- headline rows per benchmark -----------------------------------------------------------


def core_rows(r: dict) -> list[Row]:
    f = r["figures"]
    many = next(k for k in f if k.startswith("read_") and k != "read_1").split("_")[1]
    return [
        (
            "in-process call (read), 1 caller",
            num(f["read_1"], "calls/s"),
            f"asyncio.Queue round trip {num(f['queue_1'], 'calls/s')}",
            ratio(f["read_1"], f["queue_1"]),
            "throughput: higher is better",
        ),
        (
            "one-write turn, 1 caller",
            num(f["write_1"], "calls/s"),
            f"bare SQLite commit {num(f['sqlite_commit'], 'commits/s')}",
            ratio(f["write_1"], f["sqlite_commit"]),
            f"same durability (synchronous={r.get('synchronous')})",
        ),
        (
            f"one-write turns, {many} callers (group commit)",
            num(f[f"write_{many}"], "calls/s"),
            f"bare SQLite commit {num(f['sqlite_commit'], 'commits/s')}",
            ratio(f[f"write_{many}"], f["sqlite_commit"]),
            "throughput; group commit shares one commit among queued turns",
        ),
    ]


def cluster_rows(r: dict) -> list[Row]:
    calls = r["calls"]
    floor = calls["floor/echo"]["c1"]
    rows = []
    for method in ("value", "increment"):
        ours = calls[f"redis-pubsub/{method}"]["c1"]
        rows.append(
            (
                f"cross-process call ({method}), p50 / p99",
                f"{num(ours['p50_ms'])} / {num(ours['p99_ms'])} ms",
                f"redis-py PUBLISH/SUBSCRIBE round trip {num(floor['p50_ms'])} / "
                f"{num(floor['p99_ms'])} ms",
                ratio(ours["p50_ms"], floor["p50_ms"]),
                "latency: lower is better",
            )
        )
    return rows


def ws_rows(r: dict) -> list[Row]:
    d, c = r["figures"]["durable"], r["figures"]["channels"]
    sockets = r["params"]["sockets"]
    return [
        (
            f"WebSocket broadcast to {sockets} sockets, p50 / p99",
            f"{num(d['p50_ms'])} / {num(d['p99_ms'])} ms",
            f"Channels group_send {num(c['p50_ms'])} / {num(c['p99_ms'])} ms",
            ratio(d["p50_ms"], c["p50_ms"]),
            "latency: lower is better",
        )
    ]


def ratelimit_rows(r: dict) -> list[Row]:
    res = r["results"]
    peer = res["django_ratelimit"]["saturating"]
    rows = []
    for name, label in (
        ("ours_remote_owner", "owner in another process"),
        ("ours_local_owner", "owner in-process"),
    ):
        ours = res[name]["saturating"]
        rows.append(
            (
                f"rate-limit decisions, {r.get('callers')} callers ({label})",
                f"{num(ours['decisions_per_s'], '/s')}, p50 {num(ours['p50_ms'])} ms, "
                f"p99 {num(ours['p99_ms'])} ms",
                f"django-ratelimit on Redis {num(peer['decisions_per_s'], '/s')}, "
                f"p50 {num(peer['p50_ms'])} ms, p99 {num(peer['p99_ms'])} ms",
                ratio(ours["decisions_per_s"], peer["decisions_per_s"]),
                "throughput: higher is better",
            )
        )
    limit = r["policy"]["limit"]
    ours = res["ours_remote_owner"]["edge_bursts"]["max_admitted_in_any_window"]
    theirs = res["django_ratelimit"]["edge_bursts"]["max_admitted_in_any_window"]
    rows.append(
        (
            f"most admitted in any {r['policy']['period']:g} s window (limit {limit})",
            str(ours),
            f"django-ratelimit {theirs}",
            ratio(ours, theirs),
            "over-admission: ours never exceeds the limit",
        )
    )
    return rows


def collab_rows(r: dict) -> list[Row]:
    d, ref = r["figures"]["durable"], r["figures"]["reference"]
    editors = r["params"]["editors"]
    return [
        (
            f"Yjs update propagation, {editors} editors, p50 / p99",
            f"{num(d['p50_ms'])} / {num(d['p99_ms'])} ms",
            f"pycrdt-websocket server {num(ref['p50_ms'])} / {num(ref['p99_ms'])} ms",
            ratio(d["p50_ms"], ref["p50_ms"]),
            "latency: lower is better",
        )
    ]


def generic_rows(name: str, r: dict) -> list[Row]:
    rows = []
    for key, value in flatten(r.get("ratios", {})).items():
        if isinstance(value, int | float):
            rows.append((f"{name}: {key}", "", "", f"{value:.3g}×", ""))
    return rows


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


HEADLINES: dict[str, Callable[[dict], list[Row]]] = {
    "core_calls": core_rows,
    "cluster_calls": cluster_rows,
    "ws_broadcast": ws_rows,
    "ratelimit": ratelimit_rows,
    "collab": collab_rows,
}


# -- curves ----------------------------------------------------------------------------------


def curves(results: dict[str, dict]) -> dict[str, dict]:
    """Every curve of every result, plus failover vs lease TTL from cluster_calls."""
    found = {}
    for result in results.values():
        found.update(result.get("curves", {}))
    failover = results.get("cluster_calls", {}).get("failover", {})
    points = []
    for mode, per_ttl in failover.items():
        for entry in per_ttl.values():
            if "median_s" in entry:
                points.append(
                    {
                        "mode": mode,
                        "lease_ttl_s": entry["lease_ttl_s"],
                        "median_s": entry["median_s"],
                    }
                )
    if points:
        found["failover_vs_lease_ttl"] = {
            "x": "lease_ttl_s",
            "unit": "seconds from kill -9 of the owner to the first call served",
            "points": points,
        }
    return found


def series(name: str, curve: dict) -> tuple[str, str, dict[str, list[tuple[float, float]]], bool]:
    """(x label, y label, {series: [(x, y)]}, log x) of a known curve."""
    pts = curve["points"]
    x = curve["x"]
    if name == "throughput_vs_callers":
        return (
            "concurrent callers",
            "calls/s",
            {
                "read turn": [(p["callers"], p["read_calls_per_s"]) for p in pts],
                "one-write turn": [(p["callers"], p["write_calls_per_s"]) for p in pts],
                "asyncio.Queue round trip (floor)": [
                    (p["callers"], p["queue_calls_per_s"]) for p in pts
                ],
            },
            True,
        )
    if name == "cold_activation_vs_objects":
        return (
            "objects stored",
            "ms",
            {
                "activation p50": [(p["objects"], p["p50_ms"]) for p in pts],
                "activation p99": [(p["objects"], p["p99_ms"]) for p in pts],
                "sqlite open + read p50 (floor)": [
                    (p["objects"], p["sqlite_open_p50_ms"]) for p in pts
                ],
            },
            True,
        )
    if name == "memory_vs_active_objects":
        return (
            "objects",
            "KiB per object",
            {
                "RSS per active object": [
                    (p["objects"], p["rss_per_active_object_bytes"] / 1024) for p in pts
                ],
                "RSS not returned after eviction (allocator pages, upper bound)": [
                    (p["objects"], p["rss_per_idle_object_bytes"] / 1024) for p in pts
                ],
                "disk per idle object": [
                    (p["objects"], p["disk_bytes_per_idle_object"] / 1024) for p in pts
                ],
            },
            True,
        )
    if name == "broadcast_latency_vs_sockets":
        out: dict[str, list] = {}
        for system in ("durable", "channels"):
            for q in ("p50", "p99"):
                out[f"{system} {q}"] = [(p["sockets"], p[system][f"{q}_ms"]) for p in pts]
        return "sockets", "ms", out, True
    if name == "failover_vs_lease_ttl":
        out = {}
        for p in pts:
            out.setdefault(p["mode"], []).append((p["lease_ttl_s"], p["median_s"]))
        return "lease TTL (s)", "failover (s)", {k: sorted(v) for k, v in out.items()}, False
    # An unknown curve: every numeric field of its points against x.
    keys = [k for k, v in pts[0].items() if k != x and isinstance(v, int | float)]
    return x, curve.get("unit", ""), {k: [(p[x], p[k]) for p in pts] for k in keys}, False


def plot(name: str, curve: dict) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots", file=sys.stderr)
        return None
    xlabel, ylabel, lines, logx = series(name, curve)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, points in lines.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(name.replace("_", " "))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    path = PLOTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curve_table(name: str, curve: dict) -> list[str]:
    xlabel, ylabel, lines, _ = series(name, curve)
    xs = sorted({x for pts in lines.values() for x, _ in pts})
    head = [xlabel, *lines]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in xs:
        cells = [num(x)]
        for pts in lines.values():
            value = dict(pts).get(x)
            cells.append(num(value) if value is not None else "–")
        out.append("| " + " | ".join(cells) + " |")
    out.append(f"\n_{ylabel}; {curve.get('unit', '')}_")
    return out


# -- the document ----------------------------------------------------------------------------


def render(results: dict[str, dict]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (or `make bench-quick`) from `bench/results/*.json`; do not "
        "edit by hand. Every figure is measured beside its baseline in the same run on the "
        "same machine; the ratio is ours / baseline (for latency > 1 means slower than the "
        "baseline, for throughput < 1 means slower). Latencies are medians over rounds of "
        "p50/p99 with warm-up excluded.",
        "",
        "| benchmark | date | mode | machine | load (1 min, start → end) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        m = r.get("machine", {})
        load_range = m.get("load_average_1min_start_end") or []
        mode = r.get("mode") or ("quick" if r.get("params", {}).get("quick") else "full")
        lines.append(
            f"| {name} | {r.get('date', '?')} | {mode} | {m.get('cpus', '?')} CPUs, "
            f"{m.get('platform', '?')} | {' → '.join(f'{x:.2f}' for x in load_range)} |"
        )
    lines += [
        "",
        "## Figures against their floors and peers",
        "",
        "| figure | ours | baseline (same run) | ratio | read as |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        make = HEADLINES.get(name)
        try:
            rows = make(r) if make else generic_rows(name, r)
        except (KeyError, StopIteration, TypeError) as exc:
            rows = [(f"{name}: unreadable result ({exc!r})", "", "", "", "")]
        for row in rows:
            lines.append("| " + " | ".join(row) + " |")
    found = curves(results)
    if found:
        lines += ["", "## Scaling curves", ""]
    for name, curve in found.items():
        path = plot(name, curve)
        lines += [f"### {name.replace('_', ' ')}", ""]
        if path is not None:
            lines += [f"![{name}](plots/{path.name})", ""]
        lines += curve_table(name, curve)
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    results = load()
    if not results:
        print("no results in bench/results/", file=sys.stderr)
        return 1
    (BENCH / "RESULTS.md").write_text(render(results))
    print(f"wrote {BENCH / 'RESULTS.md'} and {len(list(PLOTS.glob('*.png')))} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
