"""Stock Yjs (Node: yjs + y-websocket) and pycrdt editors on the same document converge,
with the server's text, through concurrent edits at the same offsets and a partition."""

from __future__ import annotations

import asyncio
import random

import pytest

from .conftest import apply_ops, new_client, random_ops

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def converged(server, name, peers, timeout=20) -> str:
    """Wait until every peer and GET /api/documents/<name> hold the same text."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        texts = [
            await asyncio.to_thread(peer.text) if hasattr(peer, "call") else peer.get_text()
            for peer in peers
        ]
        served = (await asyncio.to_thread(server.get, f"/api/documents/{name}")).body["text"]
        if all(text == served for text in texts):
            return served
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no convergence: peers {texts!r}, server {served!r}")
        await asyncio.sleep(0.1)


async def test_node_and_pycrdt_editors_converge_after_200_concurrent_edits_each(
    doc_server, node_peers
):
    name = "interop-concurrent"
    node = node_peers(doc_server, name)
    await asyncio.to_thread(node.call, "connect")
    py = new_client(doc_server, name)
    await py.connect()
    try:
        rng = random.Random(6)
        ops = random_ops(rng, 200)  # both editors get the same offsets
        node_ops = [[i, k, a.upper() if k == "ins" else a] for i, k, a in ops]
        await asyncio.gather(
            asyncio.to_thread(node.call, "edits", ops=node_ops, pause_ms=10),
            apply_ops(py, ops, pause=0.01),
        )
        text = await converged(doc_server, name, [node, py])
        # Both editors' inserts survived: upper case from Node, lower case from pycrdt.
        assert any(c.isupper() for c in text) and any(c.islower() for c in text)
        assert text == py.get_text() == node.text()
    finally:
        await py.disconnect()


@pytest.mark.parametrize("offline", ["node", "pycrdt"])
async def test_partition_50_edits_each_side_then_reconnect_converges(
    doc_server, node_peers, offline
):
    name = f"interop-partition-{offline}"
    node = node_peers(doc_server, name)
    await asyncio.to_thread(node.call, "connect")
    py = new_client(doc_server, name)
    await py.connect()
    try:
        await apply_ops(py, [[0, "ins", "shared start. "]])
        await converged(doc_server, name, [node, py])
        if offline == "node":
            await asyncio.to_thread(node.call, "disconnect")
        else:
            await py.disconnect()
        rng = random.Random(50)
        ops = random_ops(rng, 50)
        await asyncio.gather(
            asyncio.to_thread(
                node.call, "edits", ops=[[i, k, a.upper() if k == "ins" else a] for i, k, a in ops]
            ),
            apply_ops(py, ops),
        )
        # Diverged while apart: the online side reached the server, the other did not.
        online = [py] if offline == "node" else [node]
        served = await converged(doc_server, name, online)
        assert served != (node.text() if offline == "node" else py.get_text())
        if offline == "node":
            await asyncio.to_thread(node.call, "connect")
        else:
            await py.connect()
        text = await converged(doc_server, name, [node, py])
        assert any(c.isupper() for c in text) and any(c.islower() for c in text)
    finally:
        await py.disconnect()


async def test_rest_edit_reaches_node_and_pycrdt_editors_live(doc_server, node_peers):
    name = "interop-rest"
    node = node_peers(doc_server, name)
    await asyncio.to_thread(node.call, "connect")
    py = new_client(doc_server, name)
    await py.connect()
    try:
        result = await asyncio.to_thread(
            doc_server.post, f"/api/documents/{name}/edits", {"index": 0, "insert": "from REST"}
        )
        assert result.status == 200 and result.body["text"] == "from REST"
        assert await converged(doc_server, name, [node, py], timeout=10) == "from REST"
    finally:
        await py.disconnect()
