"""A small Python y-websocket client: a pycrdt ``Doc`` kept in sync with a document.

Used by the tests (the pycrdt side of the interop tests) and the benchmark; it needs the
``websockets`` package (a dev dependency). It speaks the same protocol as the stock
``WebsocketProvider``: on connect it sends sync step 1, answers the server's step 1 with
step 2, sends every local change as an update while connected, and after a reconnect
step 2 carries whatever was edited offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pycrdt

from . import _protocol as proto


class YClient:
    """One editor of one document (``url`` is ``ws://…/ws/docs/<name>/``)."""

    def __init__(self, url: str, *, origin: str | None = None, text_name: str = "content"):
        self.url = url
        self.origin = origin
        self.doc: pycrdt.Doc = pycrdt.Doc()
        self.text = self.doc.get(text_name, type=pycrdt.Text)
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.awareness: dict[int, Any] = {}  # remote client id -> state (None: left)
        self.local_awareness: dict | None = None
        self._awareness_clock = 0
        self._ws: Any = None
        self._remote = False  # applying a server update: do not send it back
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self.received_updates = 0
        self.step1_received = 0  # sync step 1 from the server (once per connect, or a resync)
        self.queries_received = 0  # awareness queries (sent with a resync)
        self.on_update: Callable[[bytes], None] | None = None
        self._subscription = self.doc.observe(self._on_change)  # kept: pycrdt drops it on GC

    @property
    def client_id(self) -> int:
        return self.doc.client_id

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def connect(self, timeout: float = 10) -> None:
        """Open the socket and run the sync handshake (waits for the server's step 2)."""
        from websockets.asyncio.client import connect

        self.synced.clear()
        self.closed.clear()
        self.close_code = None
        self._ws = await asyncio.wait_for(
            connect(self.url, origin=self.origin, max_size=2**21, open_timeout=timeout),
            timeout,
        )
        self._outbox = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        self._outbox.put_nowait(proto.sync_step1(self.doc.get_state()))
        if self.local_awareness is not None:
            self._send_awareness()
        await asyncio.wait_for(self.synced.wait(), timeout)

    async def disconnect(self, flush: float = 5) -> None:
        """Close the socket after sending what is queued (waiting at most ``flush``
        seconds); edits made while disconnected are sent after ``connect``."""
        if self._ws is not None and flush:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), flush)
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def send_raw(self, frame: bytes | str) -> None:
        """Send any frame as it is (tests of malformed input)."""
        await self._ws.send(frame)

    # -- editing -----------------------------------------------------------------------

    def get_text(self) -> str:
        return str(self.text)

    def insert(self, index: int, value: str) -> None:
        """Insert at a code-point index (pycrdt counts UTF-8 bytes; converted here)."""
        current = str(self.text)
        self.text.insert(len(current[:index].encode()), value)

    def delete(self, index: int, count: int) -> None:
        current = str(self.text)
        start = len(current[:index].encode())
        del self.text[start : start + len(current[index : index + count].encode())]

    def edit_unsent(self, index: int, value: str) -> None:
        """Insert without sending the update: as if it were lost in flight (tests)."""
        self._remote = True
        try:
            self.insert(index, value)
        finally:
            self._remote = False

    def set_awareness(self, state: dict | None) -> None:
        """Set this client's awareness state (sent now if connected, else on connect)."""
        self.local_awareness = state
        self._awareness_clock += 1
        if self._ws is not None:
            self._send_awareness()

    async def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.02)

    # -- protocol ----------------------------------------------------------------------

    def _send_awareness(self) -> None:
        state = json.dumps(self.local_awareness, separators=(",", ":"))
        entry = proto.AwarenessEntry(self.client_id, self._awareness_clock, state)
        self._outbox.put_nowait(proto.awareness_message([entry]))

    def _on_change(self, event: Any) -> None:
        if self._remote or self._ws is None:
            return  # remote changes are not echoed; offline ones go with the next step 2
        self._outbox.put_nowait(proto.sync_update(event.update))

    def _apply(self, update: bytes) -> None:
        self._remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._remote = False

    async def _write(self) -> None:
        while True:
            frame = await self._outbox.get()
            try:
                if frame is None or self._ws is None:
                    return
                await self._ws.send(frame)
            finally:
                self._outbox.task_done()

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        try:
            async for frame in ws:
                self._handle(frame)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.closed.set()
            if self._ws is ws:
                self._ws = None

    def _handle(self, frame: bytes) -> None:
        message = proto.parse_message(frame)
        if message.kind == proto.MESSAGE_SYNC:
            if message.step == proto.SYNC_STEP1:
                self.step1_received += 1
                self._outbox.put_nowait(proto.sync_step2(self.doc.get_update(message.payload)))
            else:
                if message.payload != proto.EMPTY_UPDATE:
                    self._apply(message.payload)
                self.received_updates += 1
                if self.on_update is not None:
                    self.on_update(message.payload)
                if message.step == proto.SYNC_STEP2:
                    self.synced.set()
        elif message.kind == proto.MESSAGE_AWARENESS:
            for entry in proto.parse_awareness(message.payload):
                if entry.client_id != self.client_id:
                    self.awareness[entry.client_id] = json.loads(entry.state_json)
        elif message.kind == proto.MESSAGE_QUERY_AWARENESS:
            self.queries_received += 1
            if self.local_awareness is not None:
                self._send_awareness()
