"""Fixtures of the collaborative editor tests: real servers of the demo project, a stock
Yjs peer in Node (``tools/yjs-peer.mjs``), pycrdt peers (``apps.collab_doc.yclient``)."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pycrdt
import pytest

from apps.collab_doc.yclient import YClient
from tests._servers import ROOT, ServerProcess, running_server

FRONTEND = ROOT / "apps" / "collab_doc" / "frontend"
NAMESPACE = "collab_doc.Document"


@pytest.fixture(scope="module")
def doc_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """One embedded demo server (config.settings) shared by a module's tests; each test
    uses its own document names."""
    with running_server(tmp_path_factory.mktemp("collab")) as server:
        yield server


def ws_url(server: ServerProcess, name: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/docs/{name}/"


def new_client(server: ServerProcess, name: str) -> YClient:
    """A pycrdt editor of ``name`` (the Origin is the server's, as a browser's would be)."""
    return YClient(ws_url(server, name), origin=server.url)


class NodePeer:
    """The stock yjs + y-websocket client in a Node process, one JSON command per line."""

    def __init__(self, server: ServerProcess, name: str, log: Path) -> None:
        node = shutil.which("node")
        assert node, "node is not installed"
        assert (FRONTEND / "node_modules" / "y-websocket").exists(), "run make test (npm ci)"
        self._log = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [node, "tools/yjs-peer.mjs", f"ws://127.0.0.1:{server.port}/ws/docs", name, server.url],
            cwd=FRONTEND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self._read(20) == {"ready": True}

    def _read(self, timeout: float) -> dict:
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"the Node peer did not answer within {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the Node peer exited ({self.proc.poll()})")
        return json.loads(line)

    def call(self, op: str, timeout: float = 30, **args) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.proc.stdin.flush()
        answer = self._read(timeout)
        assert "error" not in answer, answer["error"]
        return answer

    def text(self) -> str:
        return self.call("text")["text"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit", timeout=5)
                self.proc.wait(5)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def node_peers(tmp_path):
    """Make Node peers (closed at teardown): ``node_peers(server, name)``."""
    made: list[NodePeer] = []

    def make(server: ServerProcess, name: str) -> NodePeer:
        peer = NodePeer(server, name, tmp_path / f"node-{len(made)}.log")
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def random_ops(rng: random.Random, count: int, alphabet: str = "abcdefghij") -> list[list]:
    """``count`` random edits as [index, "ins", text] or [index, "del", n]; indexes
    are drawn small so that two editors given the same seed hit the same offsets."""
    ops: list[list] = []
    for _ in range(count):
        index = rng.randrange(0, 40)
        if rng.random() < 0.7:
            ops.append([index, "ins", "".join(rng.choices(alphabet, k=rng.randint(1, 4)))])
        else:
            ops.append([index, "del", rng.randint(1, 3)])
    return ops


async def apply_ops(client: YClient, ops: list[list], pause: float = 0.0) -> None:
    """The pycrdt twin of the Node peer's ``edits`` (same clamping)."""
    import asyncio

    for index, kind, arg in ops:
        length = len(client.get_text())
        at = min(index, length)
        if kind == "ins":
            client.insert(at, arg)
        elif length > at:
            client.delete(at, min(arg, length - at))
        if pause:
            await asyncio.sleep(random.random() * pause)


def document_files(var: Path) -> list[Path]:
    return sorted((var / "objects" / NAMESPACE).glob("*/*.sqlite3"))


def stored_document(path: Path) -> dict:
    """What a document's SQLite file holds (read-only): rows, bytes, and the text and
    encoded state rebuilt from snapshot + tail (the snapshot round trip)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        snapshot = conn.execute("SELECT state, version FROM doc_snapshot").fetchall()
        tail = conn.execute("SELECT data FROM doc_updates ORDER BY version").fetchall()
    finally:
        conn.close()
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    for state, _version in snapshot:
        doc.apply_update(state)
    for (data,) in tail:
        doc.apply_update(data)
    return {
        "snapshot_rows": len(snapshot),
        "snapshot_bytes": sum(len(s) for s, _ in snapshot),
        "tail_rows": len(tail),
        "tail_bytes": sum(len(d) for (d,) in tail),
        "text": str(text),
        "state_bytes": len(doc.get_update()),
    }
