"""Operations: hot objects across the cluster, per-object limits, moving an object
(issue 22, CONTRACT § Operations).

- Each host counts what its objects cost it (``hot.py``) and publishes the hottest in its
  heartbeat description (``figures``); ``ahot`` merges every live host's.
- A per-object limit (``limits.py``) is set by a turn of the object's owner (the
  ``limit`` inspection action), so it is stored with the object and follows it.
- A move drains the object from its owner (the ``move`` inspection action asks for an
  eviction after the current turn) and, once its storage is closed, hands the lease to
  the chosen host instead of releasing it (``hand_over``): the lease store's take-over
  gives that host a higher token, so the fence stays in force, and calls refused during
  the drain (retryable, they never ran) are routed there. Cluster mode only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import TYPE_CHECKING, Any

from . import clock
from .conf import get_setting, is_cluster_mode
from .exceptions import InvalidArgument, NoHostError, ObjectNotActive
from .hot import FIGURES, DisabledHotObjects, HotObjects, merge
from .leases.base import Lease, LeaseHolder
from .limits import parse as parse_limit
from .router import get_router

if TYPE_CHECKING:
    from .host import ObjectHost
    from .ids import ObjectId
    from .turns import ActiveObject

logger = logging.getLogger(__name__)

HOT_LIMIT_MAX = 200
MOVE_WAIT = 5.0  # seconds the move route waits for the new owner to take the object

# Activations asked to move, and where to: read once their storage closed.
_moves: weakref.WeakKeyDictionary[ActiveObject, str] = weakref.WeakKeyDictionary()


# -- this host's figures (the heartbeat) ------------------------------------------------


def hot_objects(host: ObjectHost) -> HotObjects:
    """The host's hot-object tracker (``HOT_OBJECTS`` false: one that does nothing)."""
    cls = HotObjects if get_setting("HOT_OBJECTS") else DisabledHotObjects
    return cls(host.active.get, host.settings.mailbox_size)


_last_described: dict[str, float] = {}


def figures(host: ObjectHost) -> dict[str, Any]:
    """What the heartbeat adds about load: the hottest objects, recent overloads, and
    ``loop_lag``, how late this description was asked for after the last one, beyond
    the heartbeat interval (a busy or blocked event loop delays the heartbeat too)."""
    now = clock.monotonic()
    last = _last_described.get(host.host_id)
    _last_described[host.host_id] = now
    interval = float(get_setting("HEARTBEAT_INTERVAL"))
    lag = 0.0 if last is None else max(0.0, now - last - interval)
    snapshot = host.hot.snapshot()
    load = sum(entry["busy"] for entry in snapshot["hot"])
    return {**snapshot, "loop_lag": round(lag, 4), "busy": round(load, 4)}


# -- across the cluster -----------------------------------------------------------------------


async def alive_descriptions() -> list[dict[str, Any]]:
    """The description of every live host (this one's, fresh, in embedded mode)."""
    router = get_router()
    if not is_cluster_mode():
        host = router.host
        if host is None:
            return []
        return [
            {
                "id": host.host_id,
                "pid": host.pid,
                "alive": host.running,
                "started": host.started_at,
                "heartbeat": clock.wall(),
                **host.describe(),
            }
        ]
    _store, registry = router.cluster_parts()
    return [h for h in await registry.list_hosts() if h.get("alive")]


async def ahot(limit: int = 20, by: str = "heat") -> dict[str, Any]:
    """The hottest objects across live hosts, each with its ``owner``, and the recent
    overload events (CONTRACT: ``GET /api/objects/hot``); current within a heartbeat."""
    if not 1 <= limit <= HOT_LIMIT_MAX:
        raise InvalidArgument(f"limit must be 1-{HOT_LIMIT_MAX}")
    if by not in FIGURES:
        raise InvalidArgument(f"by must be one of {', '.join(FIGURES)}")
    return merge(await alive_descriptions(), limit=limit, by=by)


# -- per-object limits --------------------------------------------------------------------


async def aset_limit(object_id: ObjectId, body: Any) -> dict[str, Any] | None:
    """Set (or with None remove) the object's limit through its owner; returns it."""
    parse_limit(body)  # a bad body is refused before the object is activated for it
    reply = await get_router().inspect(object_id, "limit", json.dumps({"limit": body}))
    return reply["limit"]


# -- moving an object ----------------------------------------------------------------------


def request_move(active: ActiveObject, target: str) -> None:
    """Drain ``active`` after the current turn, then hand its lease to ``target``."""
    _moves[active] = target
    active.request_abort("moved")


async def hand_over(host: ObjectHost, active: ActiveObject) -> bool:
    """After a moved object's storage closed: give its lease to the chosen host (a new,
    higher token). False when it was not moved or the lease is no longer ours; the
    caller then releases it as usual."""
    target = _moves.pop(active, None)
    if target is None or host.registry is None:
        return False
    mine = LeaseHolder(active.lease.host_id, active.lease.token)
    try:
        lease = await host.lease_store.take_over(active.key, mine, target)
    except Exception as exc:  # the lease store is unreachable: release (it lapses)
        logger.warning("%s not handed over to %s: %s", active.key, target, exc)
        return False
    if isinstance(lease, Lease):
        logger.info("%s handed over to %s (token %s)", active.key, target, lease.token)
        return True
    logger.warning("%s not handed over to %s: the lease moved on", active.key, target)
    return False


async def amove(object_id: ObjectId, target: str) -> dict[str, Any]:
    """Move the object to host ``target`` (a live host's id): drained from its owner,
    then activated there. Returns ``{"from", "owner"}`` (owner None if not yet)."""
    if not is_cluster_mode():
        raise InvalidArgument("objects move between hosts in cluster mode only")
    store, registry = get_router().cluster_parts()
    if target not in await registry.live_host_ids():
        raise InvalidArgument(f"no live host {target!r}")
    previous = None
    try:
        reply = await get_router().inspect(object_id, "move", json.dumps({"host": target}))
        previous = reply["from"]
    except (ObjectNotActive, NoHostError):
        # Not active on the host the router picked: claim it for the target directly
        # (free leases only; a holder found meanwhile keeps it).
        lease = await store.acquire(object_id.key, target)
        if isinstance(lease, LeaseHolder):
            previous = lease.host_id
    owner = await _await_owner(object_id, target)
    if owner == target:
        try:
            await get_router().inspect(object_id, "activate", "{}")  # activates it there
        except Exception as exc:  # it activates at its next call anyway
            logger.warning("%s not activated on %s after its move: %s", object_id.key, target, exc)
    return {"from": previous, "owner": owner}


async def _await_owner(object_id: ObjectId, target: str) -> str | None:
    """Wait (up to MOVE_WAIT) until the lease names ``target``; the holder then."""
    store, _registry = get_router().cluster_parts()
    deadline = clock.monotonic() + MOVE_WAIT
    while True:
        holder = await store.get_holder(object_id.key)
        if holder is not None and holder.host_id == target:
            return target
        if clock.monotonic() >= deadline:
            return None if holder is None else holder.host_id
        await asyncio.sleep(0.05)


# -- the admin's live page ------------------------------------------------------------------


async def aoverview(limit: int = 20) -> dict[str, Any]:
    """What the live operations page shows: every known host (alive or lately dead) with
    its load, the hottest objects across live hosts, and recent overload events."""
    router = get_router()
    if is_cluster_mode():
        _store, registry = router.cluster_parts()
        hosts = await registry.list_hosts()
    else:
        hosts = await alive_descriptions()
    merged = merge([h for h in hosts if h.get("alive")], limit=limit)
    return {
        "ts": clock.wall(),
        "hosts": [
            {
                "id": h.get("id"),
                "pid": h.get("pid"),
                "alive": bool(h.get("alive")),
                "started": h.get("started"),
                "heartbeat": h.get("heartbeat"),
                "objects": h.get("objects", 0),
                "busy": h.get("busy", 0.0),
                "loop_lag": h.get("loop_lag", 0.0),
                "sockets": sum((h.get("sockets") or {}).values()),
            }
            for h in hosts
        ],
        **merged,
    }
