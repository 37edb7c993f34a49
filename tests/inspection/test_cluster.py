"""Inspection in cluster mode: staff on one host see and act on objects another host owns.

Real processes: a private Redis and two ``runserver`` hosts sharing one VAR_DIR.
"""

from __future__ import annotations

import pytest

from durable_core.storage.files import object_path
from tests._servers import http
from tests.cluster.conftest import (  # noqa: F401  (fixtures)
    COUNTER,
    SETTINGS,
    Cluster,
    cluster,
    ok,
    redis_server,
    wait_for,
)
from tests.inspection._session import Session, create_superuser

pytestmark = pytest.mark.slow

ROOM = "process_app.Room"


def test_staff_inspect_and_act_on_objects_owned_by_another_host(cluster: Cluster):  # noqa: F811
    front, owner = cluster.start(2)
    owner_id, front_id = cluster.host_id(owner), cluster.host_id(front)
    create_superuser(cluster.var, SETTINGS, "root", "pw")

    # Objects written through `owner` are owned by it (first access wins).
    ok(owner.post("/t/room/lobby/broadcast", {"text": "<b>hi</b>"}), owner)
    for _ in range(3):
        ok(owner.post("/api/demo/counter/c1"), owner)
    room, counter = cluster.object_id("lobby", ROOM), cluster.object_id("c1", COUNTER)
    assert cluster.lease_of(room.key)[0] == owner_id
    assert cluster.lease_of(counter.key)[0] == owner_id

    anonymous = http("GET", f"{front.url}/api/objects/{ROOM}/{room.hex}")
    assert anonymous.status == 401 and anonymous.body["error"] == "not_authenticated"

    staff = Session(front.url)
    staff.login("root", "pw")
    hosts = ok(staff.json("GET", "/api/hosts/"), front)["hosts"]
    assert {h["id"] for h in hosts if h["alive"]} == {owner_id, front_id}

    detail = ok(staff.json("GET", f"/api/objects/{ROOM}/{room.hex}"), front, owner)
    assert detail["source"] == "owner"  # read as a turn on the other host
    assert detail["lease"]["owner"] == owner_id
    assert detail["lease"]["token"] == cluster.lease_of(room.key)[1]
    assert detail["storage"]["kv"]["seq"] == 1
    assert detail["name"] == "lobby"
    counted = ok(staff.json("GET", f"/api/objects/{COUNTER}/{counter.hex}"), front)
    assert counted["storage"]["kv"] == {"n": 3} and counted["lease"]["owner"] == owner_id

    listing = ok(staff.json("GET", f"/api/objects/{COUNTER}/"), front)["objects"]
    assert [(o["id"], o["active"], o["owner"]) for o in listing] == [(counter.hex, True, owner_id)]

    def active_counters() -> int:
        spaces = ok(staff.json("GET", "/api/objects/"), front)["namespaces"]
        return next(n["active"] for n in spaces if n["namespace"] == COUNTER)

    # Active counts come from heartbeats (every second).
    wait_for(lambda: active_counters() == 1, 10, "the owner's heartbeat", cluster.logs)

    # Evict through the front: the owner lets go of the lease, storage stays.
    assert staff.json("POST", f"/api/objects/{COUNTER}/{counter.hex}/evict").status == 202
    wait_for(lambda: cluster.lease_of(counter.key) is None, 10, "lease released", cluster.logs)
    cold = ok(staff.json("GET", f"/api/objects/{COUNTER}/{counter.hex}"), front)
    assert cold["source"] == "snapshot" and cold["lease"]["owner"] is None
    assert cold["storage"]["kv"] == {"n": 3}
    assert cluster.lease_of(counter.key) is None  # the read activated nothing
    assert ok(front.post("/api/demo/counter/c1"), front)["value"] == 4  # activated afresh

    # Delete through the front an object `owner` holds: its file goes, it restarts empty.
    path = object_path(cluster.var / "objects", ROOM, room.hex)
    assert path.exists()
    assert staff.json("DELETE", f"/api/objects/{ROOM}/{room.hex}").status == 204
    assert not path.exists()
    gone = ok(staff.json("GET", f"/api/objects/{ROOM}/{room.hex}"), front)
    assert gone["deleted"] is True and gone["storage"]["kv"] == {}
    assert ok(owner.get("/t/room/lobby/info"), owner)["seq"] == 0

    # Without the CSRF token, unsafe methods are refused even for staff.
    status, _ = staff.request("DELETE", f"/api/objects/{COUNTER}/{counter.hex}")
    assert status == 403
    assert ok(front.get("/api/demo/counter/c1"), front)["value"] == 4
