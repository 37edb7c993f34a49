"""``collab_doc.Document``: one Yjs document per durable object (CONTRACT § Collaborative
documents).

The object holds a pycrdt ``Doc`` whose ``Text`` "content" is the document, speaks the
y-websocket protocol with every editor socket (sync step 1/2, updates, awareness), and
keeps the document in its own SQLite tables:

- ``doc_updates``: every update that changed the document, appended in the turn that
  received it. Frames leave only after their turn committed (the runtime's output gate),
  so an update is stored before any editor sees it relayed.
- ``doc_snapshot``: one row, the document's encoded state (``Doc.get_update()``) as of
  the last compaction, plus any updates still waiting for missing dependencies.

Compaction bound: after every turn the tail holds fewer than ``COMPACT_AFTER_UPDATES``
(200) rows and fewer than ``COMPACT_AFTER_BYTES`` (64 KiB); reaching either folds the
tail into the snapshot in the same turn. So the stored rows are at most 1 + 199 and the
stored bytes at most (encoded state at the last compaction) + 64 KiB, whatever the
number of edits.

Awareness (cursors, names) lives in memory only; each socket's attachment lists the
awareness client ids it introduced, so they are removed (and the removal broadcast)
when it closes, even after the object slept in between. When the object starts with
sockets already connected (after hibernation, a failed turn, or an owner failover), it
sends sync step 1 and an awareness query to every socket: editors answer with whatever
the server is missing (updates in flight when the old owner died) and their cursors.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pycrdt

from durable_core.objects import AlarmInfo, DurableObject

from . import _protocol as proto
from ._protocol import AwarenessEntry, ProtocolError

logger = logging.getLogger(__name__)

TEXT_NAME = "content"

COMPACT_AFTER_UPDATES = 200
COMPACT_AFTER_BYTES = 64 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024  # the encoded state; a sync step 2 carries all of it
MAX_MESSAGE_BYTES = MAX_DOCUMENT_BYTES + 1024  # one client frame (checked by the front)
MAX_AWARENESS_BYTES = 64 * 1024  # one awareness message (a reply to a query lists everyone)
MAX_AWARENESS_STATE_BYTES = 4 * 1024  # one client's state
MAX_AWARENESS_CLIENTS = 512  # states kept per document
MAX_OWNED_CLIENTS = 16  # awareness ids one socket may introduce (its tabs, over BroadcastChannel)
# Clocks of clients that left, kept so that a late, older state cannot bring a cursor
# back (y-protocols keeps them forever; we keep the newest ones only, issue 16 §1).
MAX_REMOVED_CLOCKS = 1024

# Close codes of the object (it may use 1000 and 3000-4999): 4000 + the RFC 6455 code.
CLOSE_INVALID = 4007  # the update could not be applied
CLOSE_UNSUPPORTED = 4003  # a text frame
CLOSE_DOCUMENT_FULL = 4413  # applying the update would pass MAX_DOCUMENT_BYTES


def _create_tables(sql: Any) -> None:
    sql.execute(
        "CREATE TABLE doc_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " state BLOB NOT NULL, version INTEGER NOT NULL)"
    )
    sql.execute("CREATE TABLE doc_updates (version INTEGER PRIMARY KEY, data BLOB NOT NULL)")


MIGRATIONS = [_create_tables]


class Document(DurableObject):
    """A collaboratively edited text: a Yjs document with bounded, compacted storage."""

    namespace = "collab_doc.Document"

    async def on_start(self) -> None:
        self.doc: pycrdt.Doc = pycrdt.Doc()
        self.text = self.doc.get(TEXT_NAME, type=pycrdt.Text)
        self._changes: list[bytes] = []
        # Keep the subscription: pycrdt drops the callback when it is garbage collected.
        self._subscription = self.doc.observe(lambda event: self._changes.append(event.update))
        self.version = 0
        self.snapshot_bytes = 0
        self.tail_rows = 0
        self.tail_bytes = 0
        self._schema_ready = False
        # Awareness, bounded whatever clients send (issue 16 §1): a state is kept only
        # for a client some socket introduced (at most MAX_OWNED_CLIENTS per socket,
        # MAX_AWARENESS_CLIENTS per document), so every state goes when its socket does;
        # clocks are kept for those clients, and for the last MAX_REMOVED_CLOCKS that left.
        self.clocks: dict[int, int] = {}
        self.states: dict[int, str] = {}
        self.removed_clocks: dict[int, int] = {}  # insertion order: oldest removal first
        self.owners: dict[int, str] = {}  # client id -> ws id of the socket that introduced it
        # No file means a document never written: reading it must not create one.
        if self.storage.database_size:
            self._load()
        sockets = self.ctx.get_websockets()
        for ws in sockets:
            for client in ws.deserialize_attachment() or []:
                self.owners[client] = ws.id
        self._resync_pending = bool(sockets)
        if sockets:
            # Frames cannot leave from on_start; an alarm due now runs as a turn at
            # once. Whichever comes first, it or the event that woke us, resyncs.
            self.storage.set_alarm(time.time())

    def _load(self) -> None:
        self.storage.migrate(MIGRATIONS)
        self._schema_ready = True
        for row in self.storage.sql.execute("SELECT state, version FROM doc_snapshot"):
            self.doc.apply_update(row["state"])
            self.version = row["version"]
            self.snapshot_bytes = len(row["state"])
        tail = self.storage.sql.execute("SELECT version, data FROM doc_updates ORDER BY version")
        for row in tail:
            self.doc.apply_update(row["data"])
            self.version = row["version"]
            self.tail_rows += 1
            self.tail_bytes += len(row["data"])
        self._changes.clear()

    async def on_alarm(self, info: AlarmInfo) -> None:
        self._resync()

    def _resync(self) -> None:
        """Ask every connected editor for what this activation may have missed."""
        if not self._resync_pending:
            return
        self._resync_pending = False
        step1 = proto.sync_step1(self.doc.get_state())
        query = proto.query_awareness()
        for ws in self.ctx.get_websockets():
            ws.send(step1)
            ws.send(query)

    # -- editors ---------------------------------------------------------------------

    async def on_websocket_connect(self, ws, request) -> None:
        self.ctx.accept_websocket(ws, tags=["editor"])
        self._resync()
        ws.send(proto.sync_step1(self.doc.get_state()))
        if self.states:
            ws.send(proto.awareness_message(self._awareness_entries(list(self.states))))

    async def on_websocket_message(self, ws, message: str | bytes) -> None:
        self._resync()
        if isinstance(message, str):
            ws.close(CLOSE_UNSUPPORTED, "the y-websocket protocol uses binary frames")
            return
        try:
            parsed = proto.parse_message(message)
            if parsed.kind == proto.MESSAGE_SYNC:
                self._on_sync(ws, parsed)
            elif parsed.kind == proto.MESSAGE_AWARENESS:
                self._on_awareness(ws, proto.parse_awareness(parsed.payload))
            elif parsed.kind == proto.MESSAGE_QUERY_AWARENESS and self.states:
                ws.send(proto.awareness_message(self._awareness_entries(list(self.states))))
        except ProtocolError as exc:  # the front checks first; this is the second line
            ws.close(CLOSE_INVALID, str(exc)[:120])
        except DocumentFull as exc:
            ws.close(CLOSE_DOCUMENT_FULL, str(exc)[:120])

    async def on_websocket_close(self, ws, code, reason, was_clean) -> None:
        gone = [client for client, owner in self.owners.items() if owner == ws.id]
        removed = []
        for client in gone:
            del self.owners[client]
            if self.states.pop(client, None) is not None:
                clock = self.clocks.pop(client, 0) + 1
                self._forget(client, clock)
                removed.append(AwarenessEntry(client, clock, "null"))
        if removed:
            self._broadcast(proto.awareness_message(removed), exclude=ws.id)

    def _on_sync(self, ws, message: proto.Message) -> None:
        if message.step == proto.SYNC_STEP1:
            proto.parse_state_vector(message.payload)
            try:
                missing = self.doc.get_update(message.payload)
            except ValueError as exc:
                raise ProtocolError(f"bad state vector: {exc}") from None
            ws.send(proto.sync_step2(missing))
        else:  # step 2 and update are both an update to apply
            self._apply_update(message.payload, sender=ws.id)

    # -- updates and storage -----------------------------------------------------------

    def _apply_update(self, update: bytes, sender: str | None) -> bool:
        """Apply, store and relay one update; False when it changed nothing."""
        if update == proto.EMPTY_UPDATE:
            return False
        proto.check_update(update)
        self._make_room_for(len(update))
        self._changes.clear()
        try:
            self.doc.apply_update(update)
        except Exception as exc:
            # The in-memory document may be half-changed: rebuild it from storage,
            # which never saw this update (the instance is replaced after this turn).
            self.ctx.abort("an update failed to apply")
            raise ProtocolError(f"update not applicable: {exc}") from None
        if not self._changes and not self._holds_unknown(update):
            return False  # a duplicate: nothing new to store or relay
        # Changed the document, or waits for what it depends on (issue 16 §2: a tab's
        # edit can arrive before the edit of another tab it builds on): either way it is
        # stored exactly as received and relayed, so storage and the other editors hold
        # it too and integrate it once the rest arrives.
        self._store(update)
        self._broadcast(proto.sync_update(update), exclude=sender)
        return True

    def _holds_unknown(self, update: bytes) -> bool:
        """True when ``update`` holds something the document has not integrated: structs
        past its state vector (pending on missing dependencies) or deletions of items it
        does not know yet. Decided on the diff against the document's state vector, since
        ``pycrdt.get_state(update)`` leaves out clients whose structs do not start at 0."""
        have_state = self.doc.get_state()
        missing = pycrdt.get_update(update, have_state)
        return proto.holds_unknown(missing, proto.parse_state_vector(have_state))

    def _make_room_for(self, size: int) -> None:
        if self.snapshot_bytes + self.tail_bytes + size <= MAX_DOCUMENT_BYTES:
            return
        if self.tail_rows:
            self._compact()
        if self.snapshot_bytes + size > MAX_DOCUMENT_BYTES:
            raise DocumentFull(
                f"the document would exceed {MAX_DOCUMENT_BYTES} bytes of encoded state"
            )

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            self.storage.migrate(MIGRATIONS)
            self._schema_ready = True

    def _store(self, update: bytes) -> None:
        self._ensure_schema()
        self.version += 1
        self.storage.sql.execute(
            "INSERT INTO doc_updates (version, data) VALUES (?, ?)", self.version, update
        )
        self.tail_rows += 1
        self.tail_bytes += len(update)
        if self.tail_rows >= COMPACT_AFTER_UPDATES or self.tail_bytes >= COMPACT_AFTER_BYTES:
            self._compact()

    def _compact(self) -> None:
        """Fold the tail into one snapshot row (same turn, so all or nothing)."""
        self._ensure_schema()
        state = self.doc.get_update()
        stored = [r["data"] for r in self.storage.sql.execute("SELECT data FROM doc_updates")]
        stored += [r["state"] for r in self.storage.sql.execute("SELECT state FROM doc_snapshot")]
        if stored:
            # Keep what is still pending: Doc.get_update() holds integrated structs only.
            merged = pycrdt.merge_updates(*stored)
            if self._holds_unknown(merged):
                state = pycrdt.merge_updates(state, pycrdt.get_update(merged, self.doc.get_state()))
        self.storage.sql.execute(
            "INSERT OR REPLACE INTO doc_snapshot (id, state, version) VALUES (1, ?, ?)",
            state,
            self.version,
        )
        self.storage.sql.execute("DELETE FROM doc_updates")
        self.snapshot_bytes = len(state)
        self.tail_rows = self.tail_bytes = 0

    def _broadcast(self, frame: bytes, exclude: str | None) -> None:
        for ws in self.ctx.get_websockets():
            if ws.id != exclude:
                ws.send(frame)

    # -- awareness ---------------------------------------------------------------------

    def _on_awareness(self, ws, entries: list[AwarenessEntry]) -> None:
        """Keep the newer states (y-protocols' clock rule) and relay only those: stock
        clients echo every awareness change they receive, and the echoes stop here.

        Nothing here grows with what a client invents: a removal of a client that has
        no state changes nothing (not kept, not relayed), and a new client's state is
        kept only while the sending socket and the document are under their caps."""
        changed = []
        owned = {client for client, owner in self.owners.items() if owner == ws.id}
        before = sorted(owned)
        for entry in entries:
            if len(entry.state_json) > MAX_AWARENESS_STATE_BYTES:
                raise ProtocolError("awareness state too big")
            client, clock = entry.client_id, entry.clock
            known = client in self.states
            current = self.clocks.get(client, self.removed_clocks.get(client, 0))
            if entry.removed:
                if not known or clock < current:
                    continue  # nothing to remove (or an old removal): drop it here
                del self.states[client]
                del self.clocks[client]
                self.owners.pop(client, None)
                owned.discard(client)
                self._forget(client, clock)
            else:
                if clock <= current:
                    continue
                if not known:
                    if len(self.states) >= MAX_AWARENESS_CLIENTS or (
                        client not in self.owners and len(owned) >= MAX_OWNED_CLIENTS
                    ):
                        continue  # full: this cursor is not shown
                    self.removed_clocks.pop(client, None)
                    if client not in self.owners:
                        self.owners[client] = ws.id
                        owned.add(client)
                self.states[client] = entry.state_json
                self.clocks[client] = clock
            changed.append(entry)
        if sorted(owned) != before:
            ws.serialize_attachment(sorted(owned))
        if changed:
            self._broadcast(proto.awareness_message(changed), exclude=ws.id)

    def _forget(self, client: int, clock: int) -> None:
        """Remember the clock of a client that left, within MAX_REMOVED_CLOCKS."""
        self.removed_clocks.pop(client, None)
        self.removed_clocks[client] = clock
        while len(self.removed_clocks) > MAX_REMOVED_CLOCKS:
            del self.removed_clocks[next(iter(self.removed_clocks))]

    def _awareness_entries(self, clients: list[int]) -> list[AwarenessEntry]:
        return [AwarenessEntry(c, self.clocks.get(c, 0), self.states[c]) for c in clients]

    # -- REST (called through stubs) ------------------------------------------------------

    async def read(self) -> dict:
        """The text and version."""
        self._resync()
        return {"text": str(self.text), "version": self.version}

    async def edit(self, index: int, insert: str | None = None, delete: int | None = None) -> dict:
        """Insert ``insert`` at ``index`` or delete ``delete`` characters there (indexes
        count Unicode code points), as one Yjs update broadcast to every editor.

        Returns the new ``{"text", "version"}``, or ``{"error", "message"}`` for an edit
        that does not fit the document (validation happens here, against its real text).
        """
        self._resync()
        text = str(self.text)
        if index > len(text):
            return _refusal("out_of_range", f"index {index} is past the end ({len(text)})")
        start = len(text[:index].encode())  # pycrdt's Text counts UTF-8 bytes
        self._changes.clear()
        if insert is not None:
            try:
                self._make_room_for(len(insert.encode()) + 64)
            except DocumentFull as exc:
                return _refusal("too_large", str(exc))
            self.text.insert(start, insert)
        else:
            assert delete is not None
            if index + delete > len(text):
                return _refusal(
                    "out_of_range", f"cannot delete {delete} at {index} of {len(text)} characters"
                )
            end = start + len(text[index : index + delete].encode())
            del self.text[start:end]
        for update in self._changes:
            self._store(update)
            self._broadcast(proto.sync_update(update), exclude=None)
        self._changes.clear()
        return {"text": str(self.text), "version": self.version}

    async def storage_stats(self) -> dict:
        """What the document keeps: rows and bytes of snapshot and tail (for tests and
        the inspection of the compaction bound)."""
        return {
            "version": self.version,
            "snapshot_bytes": self.snapshot_bytes,
            "tail_rows": self.tail_rows,
            "tail_bytes": self.tail_bytes,
            "state_bytes": len(self.doc.get_update()),
            "sockets": len(self.ctx.get_websockets()),
            "awareness_clients": len(self.states),
            "awareness_clocks": len(self.clocks) + len(self.removed_clocks),
            "awareness_owners": len(self.owners),
        }


class DocumentFull(Exception):
    """Raised when an update would take the document past MAX_DOCUMENT_BYTES; the editor
    that sent it is disconnected (a retry cannot help until text is removed)."""


def _refusal(code: str, message: str) -> dict:
    return {"error": code, "message": message}
