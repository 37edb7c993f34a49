"""WebSockets across fronts and hosts in cluster mode (issue 4, "Must show"; DESIGN §9).

Real parts only, all on 127.0.0.1: a private ``redis-server``, ``manage.py runserver``
processes (Daphne plus a cluster host each) sharing one VAR_DIR, and real clients (the
``websockets`` package) in the test process. Two servers are *fronts*: they hold the
client sockets. A third, the *owner*, runs the ``process_app.Room`` object: an HTTP call
on it activates the room before any socket connects (first access wins), and the test
checks that the Redis lease (``host_id|token``) names the owner's pid.

Every client keeps every frame it receives (a reader task per socket), so the tests judge
exact streams: a broadcast carries the room's ``seq``, and each socket must see the seqs
increase by exactly 1, none missing and none twice.

Bounds come from the defaults: heartbeat 1 s (a host is dead after 3 missed ones, or at
once when its pid is gone on this machine), the dead-front janitor runs once per
heartbeat, lease TTL 5 s.

Tests marked ``xfail(strict=True)`` state a requirement of issue 4 that the code does
not meet yet; each reason names the bug (in durable_core, or in Daphne where it is
Daphne's), so the mark has to go when it is fixed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from durable_core.hosts import parse_host_id
from tests._servers import ServerProcess
from tests.cluster.conftest import SETTINGS, Cluster, ok

pytestmark = pytest.mark.slow

ROOM = "process_app.Room"
HEARTBEAT = 1.0  # DURABLE_HEARTBEAT_INTERVAL default; the janitor runs at the same period
# A front that stops beating is dead once its heartbeat key expires (3 periods); the
# next janitor pass (1 period) claims its objects and sends each a front_dead event.
# 0.5 s more is allowed for that event's turn and for the test's 0.1 s polling.
FRONT_DEAD_BOUND = 3 * HEARTBEAT + HEARTBEAT + 0.5
MAX_MESSAGE_BYTES = 1024 * 1024  # DurableObjectConsumer.max_message_bytes, Daphne's too
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013


# -- servers ----------------------------------------------------------------------------


def start_servers(cluster: Cluster, envs: list[dict[str, str]]) -> list[ServerProcess]:
    """One server per entry of ``envs`` (extra environment each), started together and
    registered with the cluster so that teardown kills them."""
    made = []
    for env in envs:
        server = ServerProcess(
            cluster.var,
            cluster.tmp_path / f"host{len(cluster.servers)}.log",
            settings=SETTINGS,
            env={"DURABLE_REDIS_URL": cluster.redis_server.url, **env},
        )
        cluster.servers.append(server)
        made.append(server.start())
    for server in made:
        server.wait_ready(30)
    return made


def room_path(room: str, action: str = "info") -> str:
    return f"/t/room/{room}/{action}"


def own_room(cluster: Cluster, owner: ServerProcess, room: str) -> tuple[str, int]:
    """Activate ``room`` on ``owner`` before anyone else touches it; check that the lease
    in Redis names the owner (its host id, hence its pid) and return (host id, token)."""
    info = ok(owner.get(room_path(room)), *cluster.servers)
    assert info["sockets"] == 0, info
    holder = cluster.lease_of(cluster.object_id(room, ROOM).key)
    assert holder is not None, "the room holds no lease after a call"
    host_id, token = holder
    assert parse_host_id(host_id)[1] == owner.pid, (holder, owner.pid)
    assert host_id == cluster.host_id(owner)
    assert info["token"] == token, (info, holder)
    return host_id, token


async def info_of(server: ServerProcess, room: str) -> dict:
    """The room's info (sockets, closed, seq, token), asked through ``server``."""
    result = await asyncio.to_thread(server.get, room_path(room), 15)
    assert result.status == 200, f"{result}\n{server.output()}"
    return result.body


async def http_broadcast(server: ServerProcess, room: str, text: str) -> int:
    """POST a broadcast through ``server``; returns its seq."""
    result = await asyncio.to_thread(server.post, room_path(room, "broadcast"), {"text": text}, 40)
    assert result.status == 200, f"{result}\n{server.output()}"
    return result.body["seq"]


async def eventually(
    check: Callable[[], Any], timeout: float, what: str, logs: Callable[[], str]
) -> Any:
    """Poll ``check`` (sync or async) every 0.1 s until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}\n{logs()}")
        await asyncio.sleep(0.1)


# -- clients ----------------------------------------------------------------------------


class Client:
    """One real WebSocket client; a reader task keeps every frame it receives."""

    def __init__(self, name: str, front: int, conn: ClientConnection) -> None:
        self.name = name
        self.front = front  # index of the front it is connected to
        self.conn = conn
        self.frames: list[Any] = []  # text frames JSON-decoded, binary frames as bytes
        self.close_code: int | None = None  # the code received; 1006 when none came
        self.closed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: ServerProcess, front: int, room: str, name: str) -> Client:
        url = f"ws://127.0.0.1:{server.port}/ws/room/{room}/?name={name}"
        conn = await connect(
            url, proxy=None, ping_interval=None, open_timeout=20, close_timeout=5, max_size=None
        )
        return cls(name, front, conn)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.conn.recv()
                self.frames.append(json.loads(message) if isinstance(message, str) else message)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else CLOSE_ABNORMAL
        finally:
            self.closed.set()

    def seqs(self) -> list[int]:
        """Seqs of the broadcasts received, in arrival order."""
        return [f["seq"] for f in self.frames if isinstance(f, dict) and f["type"] == "broadcast"]

    def texts(self) -> list[str]:
        return [f["text"] for f in self.frames if isinstance(f, dict) and f["type"] == "broadcast"]

    async def send(self, message: dict) -> None:
        await self.conn.send(json.dumps(message))

    async def ask(self, message: dict, kind: str, timeout: float = 15) -> dict:
        """Send ``message`` and wait for the next frame of type ``kind``."""
        start = len(self.frames)
        await self.send(message)
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames[start:]:
                if isinstance(frame, dict) and frame.get("type") == kind:
                    return frame
            if self.closed.is_set() or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {kind!r} reply (closed {self.close_code})")
            await asyncio.sleep(0.02)

    async def wait_closed(self, timeout: float) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def aclose(self) -> None:
        await self.conn.close()
        await asyncio.wait_for(self.reader, 10)


async def connect_clients(
    fronts: list[ServerProcess], room: str, count: int, prefix: str = "c"
) -> list[Client]:
    """``count`` clients spread evenly over ``fronts`` (client i on front i mod n), named
    ``{prefix}{i}``, connected 50 at a time."""
    clients: list[Client] = []
    for start in range(0, count, 50):
        clients += await asyncio.gather(
            *(
                Client.open(fronts[i % len(fronts)], i % len(fronts), room, f"{prefix}{i}")
                for i in range(start, min(count, start + 50))
            )
        )
    return clients


async def wait_all(
    clients: Iterable[Client], done: Callable[[Client], bool], timeout: float, what: str
) -> None:
    """Wait until ``done`` holds for every client; fail naming the clients it does not."""
    clients = list(clients)
    deadline = time.monotonic() + timeout
    while True:
        late = [c for c in clients if not done(c)]
        if not late:
            return
        if time.monotonic() > deadline:
            sample = [(c.name, c.seqs()[-5:], c.close_code) for c in late[:5]]
            raise AssertionError(
                f"{len(late)}/{len(clients)} clients not done after {timeout}s ({what}): {sample}"
            )
        await asyncio.sleep(0.05)


async def close_all(clients: Iterable[Client]) -> None:
    await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.timeout(150)
async def test_200_sockets_on_2_fronts_get_every_broadcast_once_in_order_from_a_third_host(
    cluster: Cluster,
):
    """200 sockets over 2 fronts, the room owned by a third host; 20 broadcasts started at
    once (10 by socket messages from both fronts, 10 by HTTP calls through both fronts)
    reach every socket exactly once, in seq order 1..20; the owner never changed."""
    front_a, front_b, owner = start_servers(cluster, [{}, {}, {}])
    fronts = [front_a, front_b]
    lease = own_room(cluster, owner, "lobby")
    clients = await connect_clients(fronts, "lobby", 200)
    try:
        assert (await info_of(front_a, "lobby"))["sockets"] == 200
        for client in clients[:4]:  # tags and attachment as the room gave them
            me = await client.ask({"type": "whoami"}, "whoami")
            assert me["tags"] == [client.name, "all"], me
            assert me["attachment"]["name"] == client.name and me["token"] == lease[1], me

        started = time.monotonic()
        by_socket = [
            clients[i].send({"type": "broadcast", "text": f"ws{i}"}) for i in range(10)
        ]  # clients 0..9 alternate between the two fronts
        by_http = [http_broadcast(fronts[i % 2], "lobby", f"http{i}") for i in range(10)]
        http_seqs = (await asyncio.gather(*by_socket, *by_http))[10:]
        await wait_all(clients, lambda c: len(c.seqs()) >= 20, 30, "20 broadcasts")
        fanned_out = time.monotonic() - started
        await asyncio.sleep(0.5)  # time for a duplicate to show up, were there one

        expected_texts = {f"ws{i}" for i in range(10)} | {f"http{i}" for i in range(10)}
        assert sorted(http_seqs) == sorted(set(http_seqs)) and set(http_seqs) <= set(range(1, 21))
        orders = set()
        for client in clients:
            assert client.seqs() == list(range(1, 21)), (client.name, client.seqs())
            assert set(client.texts()) == expected_texts, (client.name, client.texts())
            assert not client.closed.is_set(), (client.name, client.close_code)
            orders.add(tuple(client.texts()))
        assert len(orders) == 1, "two sockets saw the broadcasts in different orders"
        assert cluster.lease_of(cluster.object_id("lobby", ROOM).key) == lease, "owner changed"
        assert (await info_of(owner, "lobby"))["seq"] == 20
        print(f"20 broadcasts to 200 sockets over 2 fronts in {fanned_out:.2f}s")
    finally:
        await close_all(clients)


@pytest.mark.timeout(120)
async def test_evicted_room_keeps_its_50_sockets_wakes_on_a_message_attachments_intact(
    cluster: Cluster,
):
    """With a 1 s idle timeout on the owner, the room is evicted while 50 sockets stay
    open (its lease is released and the owner's heartbeat counts 0 objects); the next
    socket message wakes it, the broadcast it sends reaches all 50, and every socket's
    tags and attachment are as they were before the eviction."""
    front_a, front_b, owner = start_servers(cluster, [{}, {}, {"DURABLE_IDLE_TIMEOUT": "1"}])
    owner_id, first_token = own_room(cluster, owner, "den")
    key = cluster.object_id("den", ROOM).key
    clients = await connect_clients([front_a, front_b], "den", 50)
    try:
        before = {}
        for client in clients:
            me = await client.ask({"type": "whoami"}, "whoami")
            assert me["token"] == first_token, me
            before[client.name] = (me["tags"], me["attachment"])
        assert sorted(a["joined"] for _t, a in before.values()) == list(range(1, 51))

        def evicted() -> bool:  # read from Redis only: an HTTP call would wake the room
            entry = cluster.registered_hosts()[owner_id]
            return cluster.lease_of(key) is None and entry["objects"] == 0 and entry["beating"]

        await eventually(evicted, 10, "the owner to evict the idle room", cluster.logs)
        assert all(not c.closed.is_set() for c in clients), "a socket closed with its object"

        await clients[7].send({"type": "broadcast", "text": "wake up"})
        await wait_all(clients, lambda c: c.seqs() == [1], 15, "the waking broadcast")
        woken = cluster.lease_of(key)
        assert woken is not None and woken[1] > first_token, (woken, first_token)
        for client in clients:
            me = await client.ask({"type": "whoami"}, "whoami")
            assert (me["tags"], me["attachment"]) == before[client.name], (client.name, me)
            assert me["token"] == woken[1], me
        info = await info_of(front_a, "den")
        assert info["sockets"] == 50 and info["closed"] == [], info
        assert all(c.texts() == ["wake up"] for c in clients)
    finally:
        await close_all(clients)


@pytest.mark.timeout(120)
async def test_kill_9_of_the_owner_the_same_50_sockets_keep_getting_broadcasts_in_order(
    cluster: Cluster,
):
    """kill -9 of the room's owner while 50 sockets sit on the two fronts: without any
    reconnect, a broadcast through a front's HTTP view and one from a socket of the other
    front reach all 50 after the failover, in order after the one seen before the kill;
    every socket's whoami then names the new owner's token, which is above the old one,
    and its attachment survived."""
    front_a, front_b, owner = start_servers(cluster, [{}, {}, {}])
    _owner_id, old_token = own_room(cluster, owner, "hall")
    key = cluster.object_id("hall", ROOM).key
    clients = await connect_clients([front_a, front_b], "hall", 50)
    try:
        await clients[0].send({"type": "broadcast", "text": "before"})
        await wait_all(clients, lambda c: c.seqs() == [1], 15, "the broadcast before the kill")

        owner.kill9()
        killed = time.monotonic()
        assert await http_broadcast(front_a, "hall", "after http") == 2
        failover = time.monotonic() - killed
        await wait_all(clients, lambda c: c.seqs() == [1, 2], 15, "the first broadcast after")
        await clients[1].send({"type": "broadcast", "text": "after ws"})  # a front_b socket
        await wait_all(clients, lambda c: c.seqs() == [1, 2, 3], 15, "the socket's broadcast")

        holder = cluster.lease_of(key)
        live = {cluster.host_id(front_a), cluster.host_id(front_b)}
        assert holder is not None and holder[0] in live and holder[1] > old_token, holder
        for client in clients:
            assert not client.closed.is_set(), (client.name, client.close_code)
            assert client.texts() == ["before", "after http", "after ws"], client.texts()
            me = await client.ask({"type": "whoami"}, "whoami")
            assert me["token"] == holder[1] and me["attachment"]["name"] == client.name, me
        assert (await info_of(front_b, "hall"))["sockets"] == 50
        print(f"kill -9 of the owner: broadcast served again after {failover:.2f}s")
    finally:
        await close_all(clients)


@pytest.mark.timeout(120)
async def test_kill_9_of_a_front_its_sockets_close_unclean_within_the_bound_others_untouched(
    cluster: Cluster,
):
    """kill -9 of one front holding 20 of the room's 40 sockets: within FRONT_DEAD_BOUND
    (3 heartbeats + 1 janitor period + 0.5 s = 4.5 s) the room has seen exactly those 20
    closed (code 1006, was_clean False); the other front's 20 sockets stay open, are the
    room's only sockets, and still receive broadcasts."""
    front_a, front_b, owner = start_servers(cluster, [{}, {}, {}])
    own_room(cluster, owner, "yard")
    clients = await connect_clients([front_a, front_b], "yard", 40)
    kept = [c for c in clients if c.front == 0]
    lost = [c for c in clients if c.front == 1]
    try:
        await clients[0].send({"type": "broadcast", "text": "before"})
        await wait_all(clients, lambda c: c.seqs() == [1], 15, "the broadcast before the kill")

        front_b.kill9()
        killed = time.monotonic()
        info = await eventually(
            lambda: _closed_at_least(owner, "yard", len(lost)),
            FRONT_DEAD_BOUND + 10,
            "the room to see the dead front's sockets closed",
            cluster.logs,
        )
        seen_after = time.monotonic() - killed
        print(f"kill -9 of a front: its {len(lost)} sockets closed after {seen_after:.2f}s")
        assert seen_after <= FRONT_DEAD_BOUND, f"{seen_after:.2f}s > {FRONT_DEAD_BOUND}s"
        assert sorted(info["closed"]) == sorted([c.name, CLOSE_ABNORMAL, False] for c in lost)
        assert info["sockets"] == len(kept), info
        await asyncio.gather(*(c.wait_closed(10) for c in lost))  # their TCP died with it

        await kept[3].send({"type": "broadcast", "text": "after"})
        await wait_all(kept, lambda c: c.seqs() == [1, 2], 15, "the broadcast after the kill")
        await asyncio.sleep(0.3)
        assert all(not c.closed.is_set() for c in kept)
        assert (await info_of(front_a, "yard"))["sockets"] == len(kept)
    finally:
        await close_all(kept)


async def _closed_at_least(server: ServerProcess, room: str, count: int) -> dict | None:
    info = await info_of(server, room)
    return info if len(info["closed"]) >= count else None


async def freeze_front_until_declared_dead(cluster: Cluster, room: str):
    """Two fronts with 10 sockets each, the room on a third host; kill -STOP the second
    front and wait (it stays frozen) until the room closed its 10 sockets, then kill
    -CONT it. Returns that front, the clients of each front, the room's info once it had
    closed them, and the seconds it took."""
    front_a, front_b, owner = start_servers(cluster, [{}, {}, {}])
    own_room(cluster, owner, room)
    clients = await connect_clients([front_a, front_b], room, 20)
    kept = [c for c in clients if c.front == 0]
    frozen = [c for c in clients if c.front == 1]
    front_b.pause()
    paused = time.monotonic()
    try:
        info = await eventually(
            lambda: _closed_at_least(owner, room, len(frozen)),
            FRONT_DEAD_BOUND + 10,
            "the room to close the frozen front's sockets",
            cluster.logs,
        )
        seen_after = time.monotonic() - paused
        assert all(not c.closed.is_set() for c in frozen), "closed while frozen?"
    finally:
        front_b.resume()
    print(f"frozen front declared dead after {seen_after:.2f}s")
    return front_b, kept, frozen, info, seen_after


@pytest.mark.timeout(120)
async def test_front_frozen_past_3_heartbeats_the_room_closes_its_sockets_others_untouched(
    cluster: Cluster,
):
    """kill -STOP of a front holding 10 of the room's 20 sockets: while it is still frozen,
    within FRONT_DEAD_BOUND, the room closes exactly those 10 (1006, unclean); after kill
    -CONT the other front's sockets are untouched (the only ones the room counts, and
    they get its broadcasts) and the resumed front serves again."""
    front_b, kept, frozen, info, seen_after = await freeze_front_until_declared_dead(
        cluster, "attic"
    )
    try:
        assert seen_after <= FRONT_DEAD_BOUND, f"{seen_after:.2f}s > {FRONT_DEAD_BOUND}s"
        assert sorted(info["closed"]) == sorted([c.name, CLOSE_ABNORMAL, False] for c in frozen)
        assert info["sockets"] == len(kept), info

        await kept[0].send({"type": "broadcast", "text": "still here"})
        await wait_all(kept, lambda c: c.seqs() == [1], 15, "the broadcast to the live front")
        await asyncio.sleep(0.3)
        info = await info_of(front_b, "attic")  # the resumed front serves HTTP again
        assert info["sockets"] == len(kept) and len(info["closed"]) == len(frozen), info
        assert all(not c.closed.is_set() for c in kept)
        assert all(c.seqs() == [] for c in frozen), "a closed socket got a broadcast"
    finally:
        await close_all(kept + frozen)


@pytest.mark.timeout(120)
async def test_front_frozen_past_3_heartbeats_closes_its_clients_with_1012_once_resumed(
    cluster: Cluster,
):
    """After kill -CONT, the front that was declared dead while frozen closes each of its
    clients with 1012 (so that they reconnect) within 3 heartbeats."""
    _front, kept, frozen, _info, _seen = await freeze_front_until_declared_dead(cluster, "cellar")
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.closed.wait() for c in frozen)), 3 * HEARTBEAT + 2
            )
        codes = [c.close_code for c in frozen]  # None: still open
        assert codes == [CLOSE_RESTART] * len(frozen), f"close codes received: {codes}"
    finally:
        await close_all(kept + frozen)


# -- limits -------------------------------------------------------------------------------


class RawWebSocket:
    """A hand-driven WebSocket client on a plain TCP socket, for what a well-behaved
    client library never does (send before the handshake answer arrived)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    @classmethod
    async def connect(cls, server: ServerProcess, first_write: bytes) -> RawWebSocket:
        """Connect and send ``first_write`` (the upgrade request, maybe more) at once,
        without waiting for any answer."""
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.setblocking(False)
        raw = cls(sock)
        await raw.send_bytes(first_write)
        return raw

    def answered(self) -> bool:
        """True when the server has sent anything yet (peeked, not consumed)."""
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False

    async def send_bytes(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def send_text(self, message: dict) -> None:
        await self.send_bytes(_text_frame(message))

    async def _fill(self, size: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        while len(self.buffer) < size:
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
            if not chunk:
                raise ConnectionError("the server closed the TCP connection")
            self.buffer += chunk

    async def _take(self, size: int, timeout: float) -> bytes:
        await self._fill(size, timeout)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def status(self, timeout: float = 10) -> str:
        """The status line of the handshake answer (its headers are consumed)."""
        loop = asyncio.get_running_loop()
        while b"\r\n\r\n" not in self.buffer:
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head.split(b"\r\n", 1)[0].decode()

    async def frame(self, timeout: float = 5) -> tuple[int, bytes]:
        """One (unmasked) server frame: (opcode, payload)."""
        first, second = await self._take(2, timeout)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self._take(2, timeout), "big")
        elif length == 127:
            length = int.from_bytes(await self._take(8, timeout), "big")
        return first & 0x0F, await self._take(length, timeout)

    async def close(self, code: int = 1000) -> tuple[int, bytes]:
        """Close handshake: send a close frame, return the server's answering frame."""
        await self.send_bytes(_masked_frame(0x8, code.to_bytes(2, "big")))
        try:
            return await self.frame()
        finally:
            self.sock.close()


def upgrade_request(server: ServerProcess, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame (masked, as RFC 6455 requires of clients)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _text_frame(message: dict) -> bytes:
    return _masked_frame(0x1, json.dumps(message).encode())


async def early_frame(server: ServerProcess, path: str, message: dict) -> RawWebSocket:
    """Send the upgrade request, then a text frame in a write of its own once the server
    has read the request (Daphne logs the handshake) but before it answered, i.e. before
    the front accepted the socket (which takes a round trip to the owner). Retried
    while the answer wins the race."""
    route = path.partition("?")[0]
    for _ in range(10):
        raw = await RawWebSocket.connect(server, upgrade_request(server, path))
        marker = f"HANDSHAKING {route} [127.0.0.1:{raw.sock.getsockname()[1]}]"
        deadline = time.monotonic() + 10
        while marker not in server.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"no {marker!r} logged\n{server.output()}"
            await asyncio.sleep(0.0005)
        if not raw.answered():
            await raw.send_text(message)
            return raw
        raw.sock.close()
    raise AssertionError("the server always answered first: cannot send before it")


class GateRoom:
    """A front and an owning host for the limits tests, with a bystander socket on the
    front that must keep being served; closed sockets are counted as they go."""

    room = "gate"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.front, self.owner = start_servers(cluster, [{}, {}])
        own_room(cluster, self.owner, self.room)
        self.closed_names: list[str] = []
        self.bystander: Client | None = None

    async def open(self, name: str) -> Client:
        return await Client.open(self.front, 0, self.room, name)

    async def dropped(self, name: str) -> list:
        """Wait until the room recorded ``name``'s close and dropped its record; check
        that the bystander is still served. Returns the room's close entry."""
        self.closed_names.append(name)
        info = await eventually(
            lambda: _closed_at_least(self.owner, self.room, len(self.closed_names)),
            10,
            f"the room to drop {name}",
            self.cluster.logs,
        )
        assert [e[0] for e in info["closed"]] == self.closed_names, info
        assert info["sockets"] == 1, f"a record was left behind: {info}"
        assert self.bystander is not None and not self.bystander.closed.is_set()
        echo = await self.bystander.ask({"type": "echo", "text": name}, "echo")
        assert echo["text"] == name
        return info["closed"][-1]


@pytest.mark.timeout(120)
async def test_limits_and_early_frames_close_or_serve_without_leaking_records(
    cluster: Cluster,
):
    """Through a front whose room lives on another host, next to a bystander socket: a
    binary frame of exactly 1 MiB is served (echoed reversed); a text frame one byte over
    1 MiB and a text frame of invalid UTF-8 each end their connection (the close code is
    judged by the xfail test below); a frame sent before the server answered the upgrade
    is handled after the acceptance (echoed), and the socket then closes cleanly; sent
    to a room that rejects, the upgrade is refused (403). After each, the room has
    recorded the close and dropped the record, and the bystander is still served."""
    gate = GateRoom(cluster)
    gate.bystander = await gate.open("bystander")
    clients = [gate.bystander]
    try:
        big = await gate.open("big")
        clients.append(big)
        payload = os.urandom(MAX_MESSAGE_BYTES)
        await big.conn.send(payload)
        await wait_all([big], lambda c: bool(c.frames), 30, "the 1 MiB echo")
        assert big.frames == [payload[::-1]]
        await big.conn.send("x" * (MAX_MESSAGE_BYTES + 1))
        assert await big.wait_closed(10) in (CLOSE_TOO_BIG, CLOSE_ABNORMAL)
        await gate.dropped("big")

        bad = await gate.open("bad-utf8")
        clients.append(bad)
        await bad.conn.send(b'{"type": "echo", "text": "\xc3\x28"}', text=True)
        assert await bad.wait_closed(10) in (CLOSE_INVALID_DATA, CLOSE_ABNORMAL)
        await gate.dropped("bad-utf8")

        raw = await early_frame(gate.front, "/ws/room/gate/?name=early", ECHO_EARLY)
        assert " 101 " in await raw.status(), "the upgrade was not accepted"
        opcode, data = await raw.frame()
        assert (opcode, json.loads(data)) == (0x1, ECHO_EARLY), (opcode, data)
        opcode, data = await raw.close(1000)
        assert opcode == 0x8 and int.from_bytes(data[:2], "big") == 1000, (opcode, data)
        assert await gate.dropped("early") == ["early", 1000, True]

        raw = await early_frame(gate.front, "/ws/room/gate/?name=early2&reject=1", ECHO_EARLY)
        assert " 403 " in await raw.status()
        raw.sock.close()
        await asyncio.sleep(0.3)
        info = await info_of(gate.owner, "gate")
        assert info["sockets"] == 1 and [e[0] for e in info["closed"]] == gate.closed_names
    finally:
        await close_all(clients)


ECHO_EARLY = {"type": "echo", "text": "early bird"}


@pytest.mark.timeout(60)
async def test_invalid_utf8_and_oversize_text_are_closed_with_1007_and_1009(cluster: Cluster):
    """A text frame of invalid UTF-8 gets close code 1007, one over 1 MiB gets 1009."""
    gate = GateRoom(cluster)
    bad = await gate.open("bad-utf8")
    big = await gate.open("big")
    try:
        await bad.conn.send(b'{"type": "echo", "text": "\xc3\x28"}', text=True)
        await big.conn.send("x" * (MAX_MESSAGE_BYTES + 1))
        codes = [await bad.wait_closed(10), await big.wait_closed(10)]
        assert codes == [CLOSE_INVALID_DATA, CLOSE_TOO_BIG], codes
    finally:
        await close_all([bad, big])


@pytest.mark.timeout(60)
async def test_a_client_flooding_past_the_rate_is_closed_1013_and_its_record_removed(
    cluster: Cluster,
):
    """A client sending 5,000 messages as fast as it can (the room answers none) against
    100 messages/s with a burst of 200 is closed with 1013; the room records that close
    and drops its record; the bystander on the same front is still served."""
    gate = GateRoom(cluster)
    gate.bystander = await gate.open("bystander")
    flood = await gate.open("flood")
    try:
        started = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            for _ in range(5000):
                await flood.send({"type": "noop"})
        code = await flood.wait_closed(20)
        print(f"flooding client closed with {code} after {time.monotonic() - started:.2f}s")
        assert code == CLOSE_TRY_AGAIN
        assert await gate.dropped("flood") == ["flood", CLOSE_TRY_AGAIN, True]
    finally:
        await close_all([gate.bystander, flood])


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Daphne bug (not durable_core): bytes that arrive in the same read as the "
    "upgrade request are lost; daphne/http_protocol.py re-injects only the request line, "
    "headers and body into the WebSocket protocol, and what twisted buffered after them "
    "is dropped. The socket is accepted and stays open; the frame never reaches the app",
)
@pytest.mark.timeout(60)
async def test_a_frame_in_the_same_write_as_the_upgrade_request_is_handled_after_accept(
    cluster: Cluster,
):
    """A client that writes the upgrade request and a text frame in one write (RFC 6455
    §4.1 says it must wait, some do not) gets the frame handled after the acceptance
    (echoed), or the socket closed; never a silently lost frame on an open socket."""
    gate = GateRoom(cluster)
    request = upgrade_request(gate.front, "/ws/room/gate/?name=eager")
    raw = await RawWebSocket.connect(gate.front, request + _text_frame(ECHO_EARLY))
    try:
        assert " 101 " in await raw.status()
        try:
            opcode, data = await raw.frame(timeout=3)
        except TimeoutError:
            raise AssertionError("the frame was lost: no answer, and the socket is open") from None
        if opcode == 0x1:
            assert json.loads(data) == ECHO_EARLY
        else:
            assert opcode == 0x8, (opcode, data)
    finally:
        raw.sock.close()


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.timeout(60)
async def test_a_client_that_never_reads_is_closed_1013_once_its_send_buffer_is_full(
    cluster: Cluster,
):
    """A client that does not read (a 4 KiB receive buffer, a 1-message client queue)
    while six other sockets broadcast 1,140 frames of 20 kB is cut off once more than the
    front's write-buffer bound (1 MiB past Twisted's full buffer) wait for it: when it
    reads again it gets fewer than 1,140 frames, then the close (1013, or 1006 when the
    close frame could not get past the unread data); the room records a 1013 close and
    drops the socket's record."""
    gate = GateRoom(cluster)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gate.front.port))
    url = f"ws://127.0.0.1:{gate.front.port}/ws/room/gate/?name=sleeper"
    sleeper = await connect(url, sock=sock, proxy=None, ping_interval=None, max_queue=1)
    senders = await connect_clients([gate.front], "gate", 6, prefix="sender")
    try:
        before = _rss_mib(gate.front.pid)
        text = "z" * 20_000

        async def blast(client: Client) -> None:
            for _ in range(190):  # within the burst of 200: the flood limit stays out
                await client.send({"type": "broadcast", "text": text})

        await asyncio.gather(*(blast(c) for c in senders))
        await wait_all(senders, lambda c: len(c.seqs()) == 1140, 60, "1,140 broadcasts")
        grown = _rss_mib(gate.front.pid) - before
        received, code = 0, None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):  # now read what the front kept for us
                try:
                    while True:
                        await sleeper.recv()
                        received += 1
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else CLOSE_ABNORMAL
        print(f"front RSS grew {grown:.0f} MiB; the sleeper read {received} frames, then {code}")
        # The close frame (1013) waits behind the data the client never read, so the
        # client may only see the connection drop (1006); the room hears 1013 either way.
        assert code in (CLOSE_TRY_AGAIN, CLOSE_ABNORMAL) and received < 1140, (
            f"the sleeper was not cut off: it read {received} frames, close code {code} "
            f"(None: still open); the front's RSS grew {grown:.0f} MiB meanwhile"
        )
        info = await info_of(gate.owner, "gate")
        assert info["closed"] == [["sleeper", CLOSE_TRY_AGAIN, True]], info
        assert info["sockets"] == len(senders), info
    finally:
        await close_all(senders)
        sleeper.transport.abort()


@pytest.mark.timeout(120)
async def test_a_message_that_cannot_reach_its_object_closes_the_socket_with_1012(
    cluster: Cluster,
):
    """The owner is frozen (its lease still valid) and the call times out: the front does
    not drop the message silently but closes the socket with 1012, so the client
    reconnects and resyncs."""
    owner, front = start_servers(cluster, [{"DURABLE_CALL_TIMEOUT": "1"}] * 2)
    own_room(cluster, owner, "frozen-owner")
    client = await Client.open(front, 1, "frozen-owner", "ann")
    try:
        owner.pause()
        try:
            await client.send({"type": "broadcast", "text": "lost?"})
            code = await client.wait_closed(15)
        finally:
            owner.resume()
        assert code == CLOSE_RESTART, f"close code {code}\n{cluster.logs()}"
    finally:
        await close_all([client])
