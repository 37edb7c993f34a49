"""Hostile and heavy input: malformed and oversized frames close only the sender's
socket with a clear code and leave the document intact; bad REST input answers the
contract's JSON errors; 20 editors opening a new document at once are all served."""

from __future__ import annotations

import asyncio

import pycrdt
import pytest

from apps.collab_doc import _protocol as proto
from apps.collab_doc.objects import MAX_DOCUMENT_BYTES, MAX_MESSAGE_BYTES

from .conftest import new_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def update_inserting(text: str) -> bytes:
    doc = pycrdt.Doc()
    doc.get("content", type=pycrdt.Text).insert(0, text)
    return doc.get_update()


BAD_FRAMES = {
    "text frame": ("hello", 1003),
    "unknown message type": (b"\x07\x00", 1003),
    "length past the end": (b"\x00\x02\x05abc", 1007),
    "unknown sync step": (b"\x00\x09\x00", 1007),
    "trailing bytes": (proto.sync_update(proto.EMPTY_UPDATE) + b"\x00", 1007),
    "update yrs cannot decode": (proto.sync_update(b"\xff\xff\xff\x01\x02"), 1007),
    "endless number": (b"\x00\x02" + b"\xff" * 12, 1007),
    "awareness state not JSON": (
        proto.MESSAGE_AWARENESS.to_bytes(1, "big")
        + proto.write_var_bytes(b"\x01\x05\x01" + proto.write_var_bytes(b"{nope")),
        1007,
    ),
    "over the message limit": (
        proto.sync_update(update_inserting("x" * (MAX_MESSAGE_BYTES + 10))),
        1009,
    ),
}


@pytest.mark.parametrize("kind", list(BAD_FRAMES))
async def test_bad_frame_closes_only_its_socket_and_leaves_the_document_intact(doc_server, kind):
    frame, code = BAD_FRAMES[kind]
    name = "bad-" + kind.replace(" ", "-")
    good, bad = new_client(doc_server, name), new_client(doc_server, name)
    await good.connect()
    await bad.connect()
    try:
        bad.set_awareness({"user": {"name": "mallory"}})
        good.insert(0, "intact")
        await good.wait_for(lambda: bad.get_text() == "intact", 10, "the edit to reach both")
        await good.wait_for(lambda: bad.client_id in good.awareness, 10, "mallory's cursor")
        before = doc_server.get(f"/api/documents/{name}").body
        await bad.send_raw(frame)
        await asyncio.wait_for(bad.closed.wait(), 10)
        assert bad.close_code == code
        # The refused socket's awareness is removed for the others.
        await good.wait_for(lambda: good.awareness.get(bad.client_id) is None, 10, "removal")
        assert doc_server.get(f"/api/documents/{name}").body == before
        good.insert(6, "!")  # the document and the other editor still work
        await good.wait_for(
            lambda: doc_server.get(f"/api/documents/{name}").body["text"] == "intact!", 10, "edit"
        )
    finally:
        await good.disconnect()
        await bad.disconnect()


async def test_document_size_limit_closes_with_4413_and_keeps_the_document(doc_server):
    name = "too-big"
    writer = new_client(doc_server, name)
    await writer.connect()
    try:
        half = "y" * (MAX_DOCUMENT_BYTES // 2 + 1000)
        await writer.send_raw(proto.sync_update(update_inserting(half)))
        await writer.send_raw(proto.sync_update(update_inserting(half)))
        await asyncio.wait_for(writer.closed.wait(), 10)
        assert writer.close_code == 4413
        assert doc_server.get(f"/api/documents/{name}").body["text"] == half
        # REST edits fill the rest: two of 99,000 fit, the third would pass the limit.
        statuses = []
        for _ in range(3):
            edit = {"index": 0, "insert": "z" * 99_000}
            statuses.append(doc_server.post(f"/api/documents/{name}/edits", edit))
        assert [r.status for r in statuses] == [200, 200, 413]
        assert statuses[2].body["error"] == "too_large"
        assert doc_server.get(f"/api/documents/{name}").body["text"] == "z" * 198_000 + half
    finally:
        await writer.disconnect()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"index": 0}, 400),
        ({"index": 0, "insert": "a", "delete": 1}, 400),
        ({"index": -1, "insert": "a"}, 400),
        ({"index": "0", "insert": "a"}, 400),
        ({"index": True, "insert": "a"}, 400),
        ({"index": 0, "insert": ""}, 400),
        ({"index": 0, "insert": 5}, 400),
        ({"index": 0, "delete": 0}, 400),
        ({"index": 0, "insert": "x" * 100_001}, 400),
        ({"index": 4, "insert": "a"}, 400),
        ({"index": 2, "delete": 2}, 400),
        ([1, 2], 400),
        ("not an object", 400),
    ],
)
def test_bad_rest_edits_answer_json_errors(doc_server, body, status):
    name = "rest-bad"
    if doc_server.get(f"/api/documents/{name}").body["text"] != "abc":
        assert (
            doc_server.post(f"/api/documents/{name}/edits", {"index": 0, "insert": "abc"}).status
            == 200
        )
    result = doc_server.post(f"/api/documents/{name}/edits", body)
    assert result.status == status, result
    assert set(result.body) >= {"error", "message"} and result.body["error"]
    assert doc_server.get(f"/api/documents/{name}").body["text"] == "abc"


def test_rest_reads_edits_by_code_point_and_refuses_bad_names(doc_server):
    name = "rest-unicode"
    assert doc_server.get(f"/api/documents/{name}").body == {"name": name, "text": "", "version": 0}
    assert (
        doc_server.post(f"/api/documents/{name}/edits", {"index": 0, "insert": "a😀b"}).status
        == 200
    )
    after = doc_server.post(f"/api/documents/{name}/edits", {"index": 2, "insert": "é"}).body
    assert after["text"] == "a😀éb" and after["version"] == 2
    assert (
        doc_server.post(f"/api/documents/{name}/edits", {"index": 1, "delete": 1}).body["text"]
        == "aéb"
    )
    for bad in ["has%20space", "x" * 65, "%C3%A9t%C3%A9", "f" * 64]:
        result = doc_server.get(f"/api/documents/{bad}")
        assert result.status == 404 and result.body["error"] == "not_found", (bad, result)
    raw = doc_server.post(f"/api/documents/{name}/edits", None)
    assert raw.status == 400 and raw.body["error"] == "bad_request"
    listed = doc_server.get("/api/documents/").body["documents"]
    assert name in [doc["name"] for doc in listed]


async def test_twenty_editors_opening_a_new_document_at_once_are_all_served(doc_server):
    name = "twenty-at-once"
    clients = [new_client(doc_server, name) for _ in range(20)]
    try:
        await asyncio.gather(*(client.connect(timeout=30) for client in clients))
        for i, client in enumerate(clients):
            client.insert(0, f"<{i}>")
        expected = {f"<{i}>" for i in range(20)}

        def everyone_has_all() -> bool:
            texts = {client.get_text() for client in clients}
            return len(texts) == 1 and all(tag in next(iter(texts)) for tag in expected)

        await clients[0].wait_for(everyone_has_all, 30, "all 20 edits everywhere")
        served = doc_server.get(f"/api/documents/{name}").body["text"]
        assert served == clients[0].get_text()
    finally:
        await asyncio.gather(*(client.disconnect() for client in clients))
