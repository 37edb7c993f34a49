"""Document names (CONTRACT: as chat room names): a 64-hex name is always read as an
object ID, in any case, and one that is not a valid ID of documents names no document:
404 over REST and on the page, the WebSocket refused. It never becomes a named document."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests._servers import http

from .conftest import ws_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.mark.parametrize("name", ["AB" * 32, "Ab" * 32, "ab" * 32])
async def test_a_64_hex_name_that_is_no_document_id_is_not_found(doc_server, name):
    s = doc_server
    got = http("GET", f"{s.url}/api/documents/{name}")
    assert got.status == 404 and got.body["error"] == "not_found", got
    edit = http("POST", f"{s.url}/api/documents/{name}/edits", {"index": 0, "insert": "x"})
    assert edit.status == 404 and edit.body["error"] == "not_found", edit
    assert http("GET", f"{s.url}/docs/{name}/").status == 404
    with pytest.raises(InvalidStatus):
        async with connect(ws_url(s, name), origin=s.url, open_timeout=20):
            pass
    listed = http("GET", f"{s.url}/api/documents/").body["documents"]
    assert name not in [d["name"] for d in listed], listed


async def test_ordinary_names_still_open(doc_server):
    s = doc_server
    for name in ("Upper-and-lower_1", "A" * 63, "g" * 64):  # not 64 hex
        got = http("GET", f"{s.url}/api/documents/{name}")
        assert got.status == 200 and got.body["name"] == name, got
        assert http("GET", f"{s.url}/docs/{name}/").status == 200
