"""Hostile input over WebSockets: generated frames against every route of config/routing.py.

Each route the contract names is tried (a route missing from the project is reported as
a skip naming it, never passed over silently), and any other route found in
``config.routing`` is fuzzed too. Hypothesis generates sequences of frames: malformed and
truncated JSON, JSON of the wrong types, unknown and known message types with wrong
fields, random binary and y-websocket-shaped binary; separate tests send an oversize
frame and a flood, and two attack shapes of issue 16 are generated too: awareness floods
(many invented clients, removals, huge clocks) and Yjs updates sent before the updates they
depend on. Asserted: the server either answers (errors included) or closes with a
proper close code (never 1011 internal error, never a dropped TCP connection without a
close frame), logs no exception, stays up, and the stored data visible over REST changed
only by what the server acknowledged.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from pathlib import Path

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from apps.collab_doc import _protocol as proto
from tests._servers import ServerProcess, http, running_server

from ._routes import sample_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

# The contract's WebSocket routes, with a concrete path and the REST read of the state
# that rejected frames must leave alone.
ROUTES = {
    "chat": "/ws/chat/fuzz-room/",
    "docs": "/ws/docs/fuzz-doc/",
    "device": "/ws/devices/fuzz-device/",
    "device-watch": "/ws/devices/fuzz-device/watch/",
}
EXAMPLES = 20
# Close codes that are a clean refusal: normal, going away, protocol error, unsupported
# data, invalid payload, policy, too big, try again later, restart, application codes.
CLEAN_CLOSES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1012, 1013}
LOG_ALARMS = ("Traceback (most recent call last)", "Exception inside application", " ERROR ")
KNOWN_TYPES = [
    "hello", "send", "typing", "history", "report", "heartbeat", "telemetry", "ping",
    "sync", "awareness", "msg", "ack", "error", "twin", "delta",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES) | st.text(max_size=12) | json_values},
    optional={
        field: json_values | st.text(max_size=80)
        for field in (
            "name",
            "text",
            "since",
            "before",
            "limit",
            "client_msg_id",
            "state",
            "version",
            "metrics",
            "desired",
            "reported",
        )
    },
)
text_frames = st.one_of(
    messages.map(json.dumps),
    messages.map(lambda m: json.dumps(m)[: max(1, len(json.dumps(m)) // 2)]),  # truncated
    json_values.map(json.dumps),  # JSON, but not an object
    st.text(max_size=120),  # mostly not JSON at all
)
binary_frames = st.one_of(
    st.binary(max_size=200),
    # y-websocket shaped: message type, sync step, then a random (invalid) payload
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.binary(max_size=80)).map(
        lambda t: bytes([t[0], t[1], len(t[2]) & 0x7F]) + t[2]
    ),
)
frame_lists = st.lists(text_frames | binary_frames, min_size=1, max_size=5)
# A valid opening, so later frames reach the protocol's joined state too.
PRELUDES = {
    "chat": [json.dumps({"type": "hello", "name": "fuzzer"})],
    "device": [json.dumps({"type": "heartbeat"})],
}


@pytest.fixture(scope="module")
def ws_server(tmp_path_factory) -> ServerProcess:
    """One demo server (config.settings, embedded) for the module's tests."""
    with running_server(tmp_path_factory.mktemp("fuzz-ws")) as server:
        yield server


def _route_exists(path: str) -> bool:
    from config.routing import websocket_urlpatterns

    return any(p.pattern.match(path.lstrip("/")) for p in websocket_urlpatterns)


def _all_routes() -> dict[str, str]:
    """The contract's routes plus any other pattern of config.routing (with sample values)."""
    from config.routing import websocket_urlpatterns

    routes = dict(ROUTES)
    for pattern in websocket_urlpatterns:
        if pattern.pattern.match("ws/no-such-route-zz/"):
            routes["catch-all"] = "/ws/no-such-route-zz/"  # refuses unknown paths
            continue
        if any(pattern.pattern.match(path.lstrip("/")) for path in ROUTES.values()):
            continue
        sample = sample_path(pattern.pattern, "fuzz")
        routes[f"other:{sample}"] = sample
    return routes


def _state(server: ServerProcess, route: str) -> object:
    """What REST shows of the route's object, for the before/after comparison."""
    if route == "chat":
        return http("GET", f"{server.url}/api/chat/rooms/fuzz-room").body.get("messages")
    if route == "docs":
        return http("GET", f"{server.url}/api/documents/fuzz-doc").body.get("text")
    if route.startswith("device"):
        result = http("GET", f"{server.url}/api/devices/fuzz-device/twin")
        return None if result.status == 404 else result.body.get("state", {}).get("reported")
    return None


def _alarms(server: ServerProcess, start: int) -> list[str]:
    return [
        line
        for line in server.text()[start:].splitlines()
        if any(alarm in line for alarm in LOG_ALARMS)
    ]


class Session:
    """One connection: frames sent, replies kept, how it ended."""

    def __init__(self, server: ServerProcess, path: str) -> None:
        self.url = f"ws://127.0.0.1:{server.port}{path}"
        self.origin = f"http://127.0.0.1:{server.port}"
        self.replies: list[str | bytes] = []
        self.close_code: int | None = None
        self.refused: int | None = None  # HTTP status of a handshake refusal

    def run(self, frames: list[str | bytes], drain: float = 0.15) -> Session:
        try:
            return self._run(frames, drain)
        except InvalidStatus as exc:  # refused at the handshake: clean, if a 4xx
            self.refused = exc.response.status_code
            return self

    def _run(self, frames: list[str | bytes], drain: float) -> Session:
        with connect(
            self.url, origin=self.origin, open_timeout=10, close_timeout=2, max_size=None
        ) as ws:
            try:
                for frame in frames:
                    ws.send(frame)
                deadline = time.monotonic() + drain
                while time.monotonic() < deadline:
                    try:
                        self.replies.append(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                    except TimeoutError:
                        break
            except ConnectionClosed as exc:
                self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        return self

    def problem(self) -> str | None:
        if self.refused is not None and not 400 <= self.refused < 500:
            return f"handshake answered {self.refused}"
        code = self.close_code
        if code is not None and code not in CLEAN_CLOSES and not 3000 <= code < 5000:
            return f"closed with {code}"
        return None


def _acks(replies: list) -> set:
    """Chat messages the server stored for us (acknowledged client_msg_ids)."""
    acked = set()
    for reply in replies:
        if isinstance(reply, str):
            try:
                message = json.loads(reply)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("type") == "ack":
                acked.add(message.get("id"))
    return acked


def _accepted(replies: list) -> int:
    count = 0
    for reply in replies:
        if isinstance(reply, str) and '"accepted"' in reply:
            count += 1
    return count


@pytest.mark.parametrize("route", [*ROUTES, "others"])
def test_generated_frames_are_refused_cleanly(ws_server, route):
    """Generated frame sequences on one route: clean answers or clean closes, no server
    exception, and REST state changed only by what the server acknowledged."""
    if route == "others":
        extra = {k: v for k, v in _all_routes().items() if k not in ROUTES}
        if not extra:
            pytest.skip("config/routing.py has no WebSocket route beyond the contract's four")
        targets = extra
    else:
        path = ROUTES[route]
        if not _route_exists(path):
            pytest.skip(f"route {path} ({route}) does not exist in config/routing.py yet")
        targets = {route: path}
    for name, path in targets.items():
        _fuzz_route(ws_server, name, path)


def _fuzz_route(server: ServerProcess, route: str, path: str) -> None:
    log_start = len(server.text())
    before = _state(server, route)
    problems: list[str] = []
    acked: set = set()
    accepted = 0
    cases = 0
    outcomes: Counter = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(frames=frame_lists, prelude=st.booleans())
    def fuzz(frames, prelude):
        nonlocal accepted, cases
        sent = (PRELUDES.get(route, []) if prelude else []) + frames
        session = Session(server, path).run(sent)
        cases += 1
        acked.update(_acks(session.replies))
        accepted += _accepted(session.replies)
        if session.refused:
            outcomes[f"refused {session.refused}"] += 1
        else:
            outcomes[f"closed {session.close_code}" if session.close_code else "open"] += 1
        for reply in session.replies:
            outcomes[_kind(reply)] += 1
        problem = session.problem()
        if problem:
            problems.append(f"{route}: {problem} after {[f[:80] for f in sent]!r}")

    fuzz()
    after = _state(server, route)
    print(f"\nWebSocket fuzzing {route} {path}: {cases} connections: {dict(outcomes)}")
    assert not problems, "\n".join(problems[:20])
    assert not _alarms(server, log_start), server.output()
    assert http("GET", f"{server.url}/healthz").status == 200
    if route == "chat":
        grown = (after or 0) - (before or 0)
        assert grown == len(acked), f"chat messages grew by {grown}, {len(acked)} acknowledged"
    elif route == "docs":
        assert after == before, f"document text changed by rejected frames: {before!r} -> {after!r}"
    elif route.startswith("device") and not accepted:
        assert after == before, f"reported state changed with no report accepted: {after!r}"


@pytest.mark.parametrize("route", list(ROUTES))
def test_oversize_frame_and_flood_are_refused_cleanly(ws_server, route):
    """A 2 MiB text frame and a 2 MiB binary frame (over the 1 MiB limit), then a flood
    of 3,000 small frames: clean closes or errors, no exception, the server still up."""
    path = ROUTES[route]
    if not _route_exists(path):
        pytest.skip(f"route {path} ({route}) does not exist in config/routing.py yet")
    log_start = len(ws_server.text())
    before = _state(ws_server, route)
    big_text = json.dumps({"type": "send", "text": "x" * (2 * 1024 * 1024)})
    for frames in ([big_text], [b"\x00\x02" + b"\xff" * (2 * 1024 * 1024)]):
        session = Session(ws_server, path).run(frames, drain=1.0)
        assert session.problem() is None, f"oversize: {session.problem()}"
    flood = [json.dumps({"type": "typing"}) if i % 2 else "{" for i in range(3000)]
    session = Session(ws_server, path).run(PRELUDES.get(route, []) + flood, drain=1.0)
    assert session.problem() is None, f"flood: {session.problem()}"
    assert not _alarms(ws_server, log_start), ws_server.output()
    assert http("GET", f"{ws_server.url}/healthz").status == 200
    assert _state(ws_server, route) == before


def _kind(reply: str | bytes) -> str:
    if isinstance(reply, bytes):
        return f"binary reply type {reply[:1].hex()}"
    try:
        message = json.loads(reply)
    except ValueError:
        return "non-JSON reply"
    if isinstance(message, dict):
        return f"{message.get('type')}:{message.get('code') or message.get('error') or ''}"
    return "other reply"


# -- issue 16's attack shapes: awareness floods, out-of-order updates ---------------------

awareness_entries = st.lists(
    st.builds(
        proto.AwarenessEntry,
        st.integers(0, 2**32 - 1),  # client ids, mostly invented
        st.integers(0, 2**53),  # clocks, huge ones included
        st.sampled_from(["null", '{"user":{"name":"f"}}', "{}", '"x"']),
    ),
    min_size=1,
    max_size=400,
)
awareness_floods = st.lists(awareness_entries.map(proto.awareness_message), min_size=1, max_size=30)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_generated_awareness_floods_stay_bounded(ws_server):
    """Generated awareness floods on one document (invented clients, removals of unknown
    clients, huge clocks, bad states), each from its own socket, beside a watching editor:
    clean answers or closes, no exception, the text untouched, and the server's memory
    grows by no more than a bounded amount (issue 16 §1)."""
    path, log_start = ROUTES["docs"], len(ws_server.text())
    before = _state(ws_server, "docs")
    problems: list[str] = []
    outcomes: Counter = Counter()
    rss_before = _rss_bytes(ws_server.pid)
    sent_entries = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(frames=awareness_floods, repeat=st.integers(1, 20), poison=st.booleans())
    def fuzz(frames, repeat, poison):
        nonlocal sent_entries
        flood = frames * repeat
        if poison:  # a state that is not JSON ends the flood: the socket is closed 1007
            flood.append(proto.awareness_message([proto.AwarenessEntry(7, 1, "not json")]))
        sent_entries += sum(len(f) for f in flood) // 8  # roughly: >= 8 bytes an entry
        session = Session(ws_server, path).run(flood, drain=0.3)
        outcomes[f"closed {session.close_code}" if session.close_code else "open"] += 1
        problem = session.problem()
        if problem:
            problems.append(f"awareness flood: {problem}")

    fuzz()
    grown = (_rss_bytes(ws_server.pid) - rss_before) / 2**20
    print(f"\nawareness floods: {dict(outcomes)}, ~{sent_entries} entries, RSS +{grown:.1f} MiB")
    assert not problems, "\n".join(problems[:20])
    assert not _alarms(ws_server, log_start), ws_server.output()
    assert _state(ws_server, "docs") == before
    assert grown < 64, f"the server grew by {grown:.1f} MiB under awareness floods"


def _dependent_updates(pieces: list[str]) -> tuple[list[bytes], str]:
    """One client's edits, each building on the one before: their updates and the text."""
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    for i, piece in enumerate(pieces):
        if i % 3 == 2 and len(text) > 1:
            del text[0:1]  # deletes depend on what they delete
        else:
            text.insert(len(text) // 2, piece)
    del subscription
    return updates, str(text)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(
    pieces=st.lists(st.text("abcxyz", min_size=1, max_size=5), min_size=2, max_size=7),
    data=st.data(),
)
def test_generated_out_of_order_updates_are_stored_and_converge(ws_server, pieces, data):
    """A client's dependent updates sent in a generated order, over one or two sockets
    (as tabs sharing edits over BroadcastChannel do): the server stores what it cannot
    apply yet, and once all arrived the stored document is exactly the client's (issue
    16 §2). Each example edits its own document."""
    updates, expected = _dependent_updates(pieces)
    order = data.draw(st.permutations(range(len(updates))), label="order")
    split = data.draw(st.integers(0, len(order)), label="split")
    name = f"ooo-{zlib.crc32(repr((pieces, order, split)).encode()):08x}"
    path = f"/ws/docs/{name}/"
    frames = [proto.sync_update(updates[i]) for i in order]
    log_start = len(ws_server.text())
    for part in (frames[:split], frames[split:]):
        if part:
            session = Session(ws_server, path).run(part, drain=0.2)
            assert session.problem() is None, session.problem()
    deadline, text = time.monotonic() + 15, None
    while time.monotonic() < deadline:
        text = http("GET", f"{ws_server.url}/api/documents/{name}").body.get("text")
        if text == expected:
            break
        time.sleep(0.1)
    assert text == expected, f"order {order} split {split}: {text!r} != {expected!r}"
    assert not _alarms(ws_server, log_start), ws_server.output()
