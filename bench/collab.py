"""Collaborative editing: update propagation latency with 20 concurrent editors, our
``collab_doc.Document`` vs the reference pycrdt-websocket server.

Both servers run in the same run on free loopback ports:

* durable: ``manage.py runserver`` (Daphne + the embedded object host, ``config.settings``)
  in a temporary VAR_DIR; every update is committed to the document's SQLite file before
  it is relayed (compaction included).
* reference: pycrdt-websocket's ``WebsocketServer`` (an in-memory ``YRoom`` per path, no
  store) behind the ``websockets`` asyncio server, in its own process.

The editors are 20 y-websocket clients (``apps.collab_doc.yclient``: pycrdt + websockets)
in this process, all on one document. Each types at ``rate`` edits per second (jittered):
one transaction inserts a character into the Text "content" and sets a key ``<editor>:<n>``
in a Map "bench". Every other editor observes the key arrive; the latency is from just
before the sender's transaction to the moment a receiver's observer sees it
(time.monotonic, one clock). Warm-up excluded; every update must reach all 19 others.
Rounds alternate between the systems; figures are over all deliveries of all rounds.
Writes bench/results/collab.json.

    .venv/bin/python bench/collab.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, percentile, progress, rounded, save_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests._servers import ServerProcess, free_port, migrate  # noqa: E402

EDITORS = 20
SYSTEMS = ("durable", "reference")


# -- the reference server (its own process) ----------------------------------------------


async def reference_server(port: int) -> None:
    from pycrdt.websocket import WebsocketServer
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    class Channel:
        """pycrdt-websocket's Channel over a ``websockets`` server connection."""

        def __init__(self, ws) -> None:
            self._ws = ws

        @property
        def path(self) -> str:
            return self._ws.request.path

        def __aiter__(self):
            return self

        async def __anext__(self) -> bytes:
            try:
                return await self._ws.recv()
            except ConnectionClosed:
                raise StopAsyncIteration from None

        async def send(self, message: bytes) -> None:
            await self._ws.send(message)

        async def recv(self) -> bytes:
            return await self._ws.recv()

    async with (
        WebsocketServer(auto_clean_rooms=False) as server,
        serve(lambda ws: server.serve(Channel(ws)), "127.0.0.1", port, max_size=2**21),
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()


class ReferenceProcess:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self._log = open(log, "ab")  # noqa: SIM115 - closed in cleanup()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--role", "reference", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"ready", f"reference server did not start: {line!r}"

    def url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{name}"

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


# -- editors ------------------------------------------------------------------------------


async def run_round(url: str, origin: str | None, params: dict, seed: int) -> dict:
    import pycrdt

    from apps.collab_doc.yclient import YClient

    clients = [YClient(url, origin=origin) for _ in range(EDITORS)]
    # One editor first (the reference server loses connections that race its room's
    # start: see open_at_once), then the others together.
    await clients[0].connect(timeout=30)
    await asyncio.gather(*(c.connect(timeout=30) for c in clients[1:]))
    sent: dict[str, float] = {}
    latencies: list[float] = []
    received = {"n": 0}
    warmup_until = time.monotonic() + params["warmup_s"]
    subscriptions = []  # pycrdt drops an observer whose subscription is garbage collected

    def observer(me: int):
        def on_change(event) -> None:
            now = time.monotonic()
            for key in event.keys:
                start = sent.get(key)
                if start is not None and start >= warmup_until and not key.startswith(f"{me}:"):
                    latencies.append(now - start)
                    received["n"] += 1

        return on_change

    for i, client in enumerate(clients):
        bench_map = client.doc.get("bench", type=pycrdt.Map)
        subscriptions.append(bench_map.observe(observer(i)))

    async def editor(index: int, client) -> None:
        rng = random.Random(seed * 100 + index)
        bench_map = client.doc.get("bench", type=pycrdt.Map)
        n = 0
        stop = time.monotonic() + params["warmup_s"] + params["measure_s"]
        await asyncio.sleep(rng.random() / params["rate"])
        while time.monotonic() < stop:
            key = f"{index}:{n}"
            n += 1
            sent[key] = time.monotonic()
            with client.doc.transaction():
                text_length = len(client.get_text())
                client.text.insert(rng.randint(0, text_length), "x")
                bench_map[key] = n
            await asyncio.sleep(rng.uniform(0.5, 1.5) / params["rate"])

    started = time.monotonic()
    await asyncio.gather(*(editor(i, c) for i, c in enumerate(clients)))
    measured = sum(1 for start in sent.values() if start >= warmup_until)
    expected = measured * (EDITORS - 1)
    deadline = time.monotonic() + 15
    while received["n"] < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    texts = {c.get_text() for c in clients}
    await asyncio.gather(*(c.disconnect() for c in clients))
    latencies.sort()
    return {
        "updates": measured,
        "deliveries": received["n"],
        "missing": expected - received["n"],
        "converged": len(texts) == 1,
        "wall_s": time.monotonic() - started,
        "latencies_ms": [x * 1000 for x in latencies],
    }


async def open_at_once(url: str, origin: str | None) -> int:
    """How many of 20 editors opening a new document at the same moment get synced
    within 10 s (CONTRACT: all of them)."""
    from apps.collab_doc.yclient import YClient

    clients = [YClient(url, origin=origin) for _ in range(EDITORS)]
    results = await asyncio.gather(
        *(c.connect(timeout=10) for c in clients), return_exceptions=True
    )
    await asyncio.gather(*(c.disconnect(flush=0) for c in clients))
    return sum(1 for r in results if r is None)


def summarize(latencies: list[float]) -> dict:
    values = sorted(latencies)
    return {
        "deliveries": len(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": values[-1] if values else float("nan"),
    }


async def orchestrate(quick: bool) -> dict:
    params = {
        "editors": EDITORS,
        "rate": 5.0,  # edits per second per editor: 100 updates/s into the document
        "warmup_s": 1.0,
        "measure_s": 6.0 if quick else 15.0,
        "rounds": 1 if quick else 3,
    }
    work = Path(tempfile.mkdtemp(prefix="bench-collab-"))
    load = [os.getloadavg()[0]]
    migrate(work / "var")
    server = ServerProcess(work / "var", work / "server.log").run(60)
    reference = ReferenceProcess(work / "reference.log")
    raw: dict[str, list[dict]] = {system: [] for system in SYSTEMS}
    served_at_once = {}
    ok = False
    try:
        served_at_once["durable"] = await open_at_once(
            f"ws://127.0.0.1:{server.port}/ws/docs/at-once/", server.url
        )
        served_at_once["reference"] = await open_at_once(reference.url("at-once"), None)
        progress(f"20 editors opening a new document at once, synced: {served_at_once}")
        for round_no in range(params["rounds"]):
            order = SYSTEMS if round_no % 2 == 0 else SYSTEMS[::-1]
            for system in order:
                name = f"bench-{round_no}"
                if system == "durable":
                    url, origin = f"ws://127.0.0.1:{server.port}/ws/docs/{name}/", server.url
                else:
                    url, origin = reference.url(name), None
                progress(f"round {round_no + 1}/{params['rounds']}: {system}")
                result = await run_round(url, origin, params, seed=round_no)
                progress(
                    f"  {result['updates']} updates, {result['deliveries']} deliveries, "
                    f"missing {result['missing']}, p50 "
                    f"{percentile(result['latencies_ms'], 50):.1f} ms"
                )
                raw[system].append(result)
        ok = True
    finally:
        server.cleanup()
        reference.cleanup()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            progress(f"failed: logs kept in {work}")
    load.append(os.getloadavg()[0])
    figures = {}
    for system, rounds in raw.items():
        figures[system] = summarize([x for r in rounds for x in r["latencies_ms"]])
        figures[system]["updates"] = sum(r["updates"] for r in rounds)
        figures[system]["missing"] = sum(r["missing"] for r in rounds)
        figures[system]["converged"] = all(r["converged"] for r in rounds)
        figures[system]["new_document_20_at_once_synced"] = served_at_once[system]
    durable, ref = figures["durable"], figures["reference"]
    return {
        "benchmark": "collab",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(load),
        "versions": {
            "python": sys.version.split()[0],
            **{p: importlib.metadata.version(p) for p in ("pycrdt", "pycrdt-websocket", "daphne")},
        },
        "mode": "quick" if quick else "full",
        "params": params,
        "units": {
            "*_ms": "milliseconds from just before an editor's transaction to another "
            "editor's observer seeing it, over every delivery (19 per update)",
            "*_vs_reference": "durable / reference (>1 is slower)",
            "new_document_20_at_once_synced": "of 20 editors opening a new document at the "
            "same moment, how many completed the sync handshake within 10 s",
        },
        "setup": {
            "durable": "manage.py runserver (embedded), collab_doc.Document: each update "
            "committed to SQLite before it is relayed",
            "reference": "pycrdt-websocket WebsocketServer (in-memory YRoom, no store) on "
            "the websockets asyncio server, own process",
            "clients": f"{EDITORS} pycrdt y-websocket editors in the benchmark process, "
            f"{params['rate']:g} edits/s each (jittered), one document",
        },
        "figures": rounded(figures, 3),
        "ratios": rounded(
            {
                "p50_vs_reference": durable["p50_ms"] / ref["p50_ms"],
                "p99_vs_reference": durable["p99_ms"] / ref["p99_ms"],
            },
            3,
        ),
    }


def print_table(result: dict) -> None:
    m = result["machine"]
    print(
        f"\n{result['date']}, {result['mode']} run, {m['cpus']} CPUs, load average "
        f"{' -> '.join(f'{x:.2f}' for x in m['load_average_1min_start_end'])}"
    )
    print(f"Update propagation, {EDITORS} editors x {result['params']['rate']:g} edits/s (ms)")
    header = f"{'system':<10} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'deliveries':>11}"
    print(header)
    print("-" * len(header))
    for system, f in result["figures"].items():
        print(
            f"{system:<10} {f['p50_ms']:>7.1f} {f['p90_ms']:>7.1f} {f['p99_ms']:>7.1f} "
            f"{f['max_ms']:>7.1f} {f['deliveries']:>11}"
        )
    r = result["ratios"]
    print(
        f"durable / reference: p50 {r['p50_vs_reference']:.2f}x, p99 {r['p99_vs_reference']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round per system")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)  # the reference server
    args = parser.parse_args()
    if args.role:
        role, port = args.role
        assert role == "reference", role
        asyncio.run(reference_server(int(port)))
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: sys.exit(1))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    started = time.monotonic()
    result = asyncio.run(orchestrate(args.quick))
    result["wall_time_s"] = round(time.monotonic() - started, 1)
    path = save_result("collab", result)
    print_table(result)
    print(f"\nwall time {result['wall_time_s']} s; wrote {path}")


if __name__ == "__main__":
    main()
