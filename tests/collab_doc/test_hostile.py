"""Hostile and unlucky editors (issue 16): awareness floods cannot grow the server's
memory, every awareness state goes with the socket that brought it, and an update that
arrives before what it depends on is stored and relayed, not dropped."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pycrdt
import pytest

from apps.collab_doc import _protocol as proto
from apps.collab_doc.objects import MAX_AWARENESS_BYTES, MAX_OWNED_CLIENTS

from .conftest import document_files, new_client, stored_document

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def awareness_frame(entries: list[proto.AwarenessEntry]) -> bytes:
    frame = proto.awareness_message(entries)
    assert len(frame) <= MAX_AWARENESS_BYTES + 8  # under the front's limit: it reaches the object
    return frame


def removal_flood_frame(rng: random.Random, count: int) -> bytes:
    """``count`` removals (state null, clock 1) of client ids nobody ever used."""
    return awareness_frame(
        [proto.AwarenessEntry(rng.randrange(2**31, 2**32), 1, "null") for _ in range(count)]
    )


async def wait_applied(server, name: str, client, marker: str) -> None:
    """Send ``marker`` as an update from ``client`` (after everything it sent before,
    since a front hands one socket's frames over in order) and wait for the document."""
    client.insert(0, marker)
    await client.wait_for(
        lambda: marker in server.get(f"/api/documents/{name}", timeout=30).body["text"],
        60,
        "the marker edit (the flood has been processed)",
    )


async def test_an_awareness_removal_flood_does_not_grow_the_server_memory(doc_server):
    """~1 million removals of invented clients (180 frames of 64 KiB, within the flood
    limit) keep nothing: before the fix every one stayed in ``clocks`` (~100 MB)."""
    name = "aware-flood"
    victim, attacker = new_client(doc_server, name), new_client(doc_server, name)
    await victim.connect()
    await attacker.connect()
    rng = random.Random(16)
    frames = [removal_flood_frame(rng, 5900) for _ in range(180)]
    try:
        await wait_applied(doc_server, name, attacker, "warm ")
        before = rss_bytes(doc_server.pid)
        for frame in frames:
            await attacker.send_raw(frame)
        await wait_applied(doc_server, name, attacker, "done ")
        after = rss_bytes(doc_server.pid)
        grown = (after - before) / 2**20
        print(
            f"\nawareness removal flood: {len(frames)} frames, {len(frames) * 5900} entries;"
            f" server RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB (+{grown:.1f})"
        )
        assert grown < 30, f"the server grew by {grown:.1f} MiB"
        # Nothing was relayed: removals of clients nobody knew change nothing.
        assert victim.awareness == {}
    finally:
        await victim.disconnect()
        await attacker.disconnect()


async def test_every_awareness_state_goes_with_the_socket_that_introduced_it(doc_server):
    """A socket that introduces 600 clients gets at most MAX_OWNED_CLIENTS shown, and
    when it closes none is left behind (before the fix 496 stayed until eviction)."""
    name = "aware-owners"
    attacker = new_client(doc_server, name)
    await attacker.connect()
    states = [
        proto.AwarenessEntry(client, 1, '{"user":{"name":"x"}}') for client in range(1000, 1600)
    ]
    for start in range(0, len(states), 100):
        await attacker.send_raw(awareness_frame(states[start : start + 100]))
    watcher = new_client(doc_server, name)
    try:
        await wait_applied(doc_server, name, attacker, "x")
        await watcher.connect()
        await watcher.wait_for(lambda: len(watcher.awareness) >= 1, 10, "the shown cursors")
        await asyncio.sleep(0.5)
        assert len(watcher.awareness) == MAX_OWNED_CLIENTS
        await attacker.disconnect()
        await watcher.wait_for(
            lambda: all(state is None for state in watcher.awareness.values()), 10, "removals"
        )
        late = new_client(doc_server, name)
        await late.connect()
        await asyncio.sleep(0.5)
        assert late.awareness == {}, "states outlived the socket that introduced them"
        await late.disconnect()
    finally:
        await watcher.disconnect()
        await attacker.disconnect()


def two_dependent_updates(first: str, second: str) -> tuple[bytes, bytes]:
    """Two updates of one client, the second building on the first (clocks 0.. and n..)."""
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    text.insert(0, first)
    text.insert(len(first), second)
    del subscription
    assert pycrdt.get_state(updates[1]) == b"\x00"  # what fooled the old pending check
    return updates[0], updates[1]


async def test_an_update_before_its_dependency_is_stored_and_relayed(doc_server):
    """The second edit of a tab reaches the server before the first (as over y-websocket's
    BroadcastChannel): it is stored and relayed, so storage and every editor end with
    both edits. Before the fix it was dropped: storage and the other editor lost it."""
    name = "out-of-order"
    first, second = two_dependent_updates("hello", " world")
    early, late, other = (new_client(doc_server, name) for _ in range(3))
    for client in (early, late, other):
        await client.connect()
    try:
        await early.send_raw(proto.sync_update(second))
        await asyncio.sleep(0.5)  # stored before the dependency arrives
        await late.send_raw(proto.sync_update(first))
        await other.wait_for(lambda: other.get_text() == "hello world", 10, "both edits relayed")
        assert doc_server.get(f"/api/documents/{name}").body["text"] == "hello world"
        stored = [stored_document(p)["text"] for p in document_files(doc_server.var_dir)]
        assert "hello world" in stored and "hello" not in stored, stored
        # A duplicate of either changes nothing and is not stored again.
        version = doc_server.get(f"/api/documents/{name}").body["version"]
        await early.send_raw(proto.sync_update(first))
        await late.send_raw(proto.sync_update(second))
        await wait_applied(doc_server, name, other, "!")
        assert doc_server.get(f"/api/documents/{name}").body["version"] == version + 1
    finally:
        for client in (early, late, other):
            await client.disconnect()


def test_the_duplicate_check_sees_updates_whose_dependencies_are_missing():
    """The check that decides storing (and what compaction keeps): an update waiting for
    its dependency holds something unknown; once both are in, neither does."""
    first, second = two_dependent_updates("ab", "cd")
    doc = pycrdt.Doc()
    doc.apply_update(second)
    state = proto.parse_state_vector(doc.get_state())
    assert proto.holds_unknown(pycrdt.get_update(second, doc.get_state()), state)
    doc.apply_update(first)
    state = proto.parse_state_vector(doc.get_state())
    for update in (first, second):
        assert not proto.holds_unknown(pycrdt.get_update(update, doc.get_state()), state)
