"""The host registry: which hosts are alive, and where to reach them (DESIGN §4).

Every host writes a heartbeat key (``{prefix}:hb:<host id>``, expiring after three
periods, or one lease TTL if that is shorter) and its description in the
``{prefix}:hosts`` hash. A host is dead when its heartbeat lapsed, or at once when it
ran on this machine and its pid is gone. After a Redis restart (its ``run_id``
changes) every host gets a grace period before anything is declared dead by a missing
heartbeat, since the restart wiped all heartbeats at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import redis.asyncio as aioredis

from . import clock
from ._tasks import cancel_and_wait

logger = logging.getLogger(__name__)

STALE_ENTRY_SECONDS = 600.0  # dead hosts stay listed this long, then are forgotten


def parse_host_id(host_id: str) -> tuple[str, int]:
    """``node:pid:nonce`` → (node, pid); pid 0 when the id is not of that form."""
    node, _, rest = host_id.partition(":")
    pid, _, _nonce = rest.partition(":")
    return node, int(pid) if pid.isdigit() else 0


def pid_is_running(pid: int) -> bool:
    """True when a process with ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HostRegistry:
    """Heartbeats of this host and liveness of the others, in Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        info: dict[str, Any],
        interval: float,
        lease_ttl: float | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.info = info
        self.host_id: str = info["id"]
        self.interval = interval
        # A heartbeat lasts three periods, but never longer than a lease (when known):
        # a host must not look alive after its leases could have lapsed.
        self.expiry = max(2 * interval, min(3 * interval, lease_ttl or 3 * interval))
        self.node = os.uname().nodename
        self._task: asyncio.Task | None = None
        self._run_id: str | None = None
        self._grace_until = 0.0
        self._channels: dict[str, str] = {}
        self.on_declared_dead = None  # coroutine function, set by the host

    def _hb_key(self, host_id: str) -> str:
        return f"{self.prefix}:hb:{host_id}"

    @property
    def _hosts_key(self) -> str:
        return f"{self.prefix}:hosts"

    async def start(self, describe) -> None:
        """Write the first heartbeat, then keep beating every ``interval`` seconds."""
        self._describe = describe
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="durable:heartbeat")

    async def stop(self) -> None:
        """Stop beating and remove this host (a graceful exit is not a death)."""
        await cancel_and_wait([self._task])
        try:
            await self.client.delete(self._hb_key(self.host_id))
            await self.client.hdel(self._hosts_key, self.host_id)
        except Exception as exc:  # Redis gone at shutdown: the heartbeat simply lapses
            logger.warning("could not deregister host %s: %s", self.host_id, exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
                if self.on_declared_dead is not None and await self.was_declared_dead():
                    await self.client.delete(f"{self.prefix}:dead:{self.host_id}")
                    await self.on_declared_dead()
            except Exception as exc:
                logger.warning("heartbeat of %s failed: %s", self.host_id, exc)

    async def beat(self) -> None:
        """One heartbeat: refresh this host's key and description; notice Redis restarts."""
        entry = dict(self.info, **self._describe(), heartbeat=clock.wall())
        text = json.dumps(entry)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self._hb_key(self.host_id), text, px=int(self.expiry * 1000))
            pipe.hset(self._hosts_key, self.host_id, text)
            pipe.info("server")
            *_, server = await pipe.execute()
        self._note_run_id(server.get("run_id"))

    async def is_dead(self, host_id: str) -> bool:
        """True when ``host_id`` is known dead: its pid is gone here, or its heartbeat
        lapsed outside a grace period."""
        node, pid = parse_host_id(host_id)
        if node == self.node and pid and not pid_is_running(pid):
            return True
        if clock.monotonic() < self._grace_until:
            return False
        if await self.client.exists(self._hb_key(host_id)):
            return False
        # A restart of Redis wipes every heartbeat at once; this host's own heartbeat
        # notices it only at its next beat, so look now before calling anyone dead.
        return not await self._notice_restart()

    async def is_proven_dead(self, host_id: str) -> bool:
        """True only when ``host_id`` ran on this machine and its pid is gone: proof
        enough to take its leases before they expire. A lapsed heartbeat is not: the
        host may be paused or cut off, and still believe it holds its leases."""
        node, pid = parse_host_id(host_id)
        return node == self.node and bool(pid) and not pid_is_running(pid)

    def in_grace(self) -> bool:
        """True during the grace period after Redis restarted (no death by heartbeat)."""
        return clock.monotonic() < self._grace_until

    async def _notice_restart(self) -> bool:
        """Ask Redis for its run_id now; see ``_note_run_id``."""
        return self._note_run_id((await self.client.info("server")).get("run_id"))

    def _note_run_id(self, run_id: str | None) -> bool:
        """True (and the grace period begun) when Redis restarted since the last look."""
        restarted = self._run_id is not None and run_id != self._run_id
        if restarted:
            logger.warning("Redis restarted (run_id changed): grace before declaring deaths")
            self._grace_until = clock.monotonic() + self.interval * 3
        self._run_id = run_id
        return restarted

    async def get_channel(self, host_id: str) -> str | None:
        """The transport address of a host, from its registry entry (cached)."""
        channel = self._channels.get(host_id)
        if channel is None:
            raw = await self.client.hget(self._hosts_key, host_id)
            if raw is None:
                return None
            channel = json.loads(raw)["channel"]
            self._channels[host_id] = channel
        return channel

    # -- fronts and their objects (DESIGN §9) --------------------------------------------

    def _front_key(self, front: str) -> str:
        return f"{self.prefix}:front:{front}:objects"

    async def link_front_objects(self, fronts: set[str], key: str) -> None:
        """Record that object ``key`` holds sockets on each of ``fronts``."""
        async with self.client.pipeline(transaction=False) as pipe:
            for front in fronts:
                pipe.sadd(self._front_key(front), key)
            await pipe.execute()

    async def claim_dead_front_objects(self, batch: int = 100) -> list[tuple[str, str]]:
        """(front, object key) pairs of fronts found dead, each handed to one claimer.

        SPOP gives every member to exactly one host; a tombstone tells a front that was
        only paused that it was declared dead, so it closes its sockets (1012).
        """
        claimed: list[tuple[str, str]] = []
        if self.in_grace() or await self._notice_restart():
            return claimed  # Redis restarted: heartbeats are missing, not hosts
        for entry in await self.list_hosts():
            front = entry["id"]
            if entry["alive"] or front == self.host_id:
                continue
            members = await self.client.spop(self._front_key(front), batch)
            if members:
                await self.client.set(f"{self.prefix}:dead:{front}", "1", ex=86400)
                claimed += [(front, m.decode() if isinstance(m, bytes) else m) for m in members]
        return claimed

    async def was_declared_dead(self) -> bool:
        """True when another host declared this one dead (it had lost its heartbeat)."""
        return bool(await self.client.exists(f"{self.prefix}:dead:{self.host_id}"))

    async def list_hosts(self) -> list[dict[str, Any]]:
        """Every known host with ``alive``; entries dead for long are forgotten."""
        entries = await self.client.hgetall(self._hosts_key)
        ids = [k.decode() if isinstance(k, bytes) else k for k in entries]
        async with self.client.pipeline(transaction=False) as pipe:
            for host_id in ids:
                pipe.exists(self._hb_key(host_id))
            alive = await pipe.execute()
        hosts, now = [], clock.wall()
        for host_id, raw, is_alive in zip(ids, entries.values(), alive, strict=True):
            entry = json.loads(raw)
            entry["alive"] = bool(is_alive) and not (
                parse_host_id(host_id)[0] == self.node
                and not pid_is_running(parse_host_id(host_id)[1])
            )
            if not entry["alive"] and now - entry.get("heartbeat", 0) > STALE_ENTRY_SECONDS:
                await self.client.hdel(self._hosts_key, host_id)
                continue
            hosts.append(entry)
        return sorted(hosts, key=lambda h: h.get("started", 0))

    async def live_host_ids(self) -> list[str]:
        """Ids of hosts whose heartbeat is current."""
        return [h["id"] for h in await self.list_hosts() if h["alive"]]
