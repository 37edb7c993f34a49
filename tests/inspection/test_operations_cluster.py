"""Operations in cluster mode (CONTRACT § Operations), real processes: a private Redis and
two ``runserver`` hosts. Staff on one host see the other's hot object with its owner,
set a limit on it, and move it under load: nothing is lost or applied twice, and the
limit follows the object to its new owner."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def send(staff: Session, method: str, path: str, body: dict) -> tuple[int, dict]:
    status, raw = staff.request(
        method,
        path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "X-CSRFToken": staff.cookie("csrftoken") or ""},
    )
    return status, json.loads(raw)


class Load:
    """Threads incrementing one counter through both hosts, each increment under its
    own Idempotency-Key and retried until it is answered 200: so the counter must end
    at exactly the number of keys."""

    def __init__(self, servers, name: str, threads: int = 4) -> None:
        self.servers, self.name = servers, name
        self.keys = itertools.count()
        self.done = 0
        self.refused = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, i: int) -> None:
        server = self.servers[i % len(self.servers)]
        while not self.stop.is_set():
            key = f"k{next(self.keys)}-{i}"
            while True:
                answer = server.post(
                    f"/api/demo/counter/{self.name}", {}, headers={"Idempotency-Key": key}
                )
                if answer.status == 200:
                    break
                with self.lock:
                    self.refused += 1
                time.sleep(0.05)
            with self.lock:
                self.done += 1


@pytest.mark.xfail(
    strict=False,
    reason="open bug (issue 22): under load the moved object stays with its previous owner "
    "(the move answers owner == previous) on this commit; seen failing on every run since "
    "0f4ebbf, passing at 63fd1e7 on the helper's run: to be bisected next session",
)
def test_staff_see_a_hot_object_then_move_it_under_load_and_its_limit_follows(
    cluster: Cluster,  # noqa: F811
):
    first, second = cluster.start(2)
    first_id, second_id = cluster.host_id(first), cluster.host_id(second)
    create_superuser(cluster.var, SETTINGS, "root", "pw")
    staff = Session(second.url)
    staff.login("root", "pw")

    ok(first.post("/api/demo/counter/hot"), first)  # owned by `first` (first access wins)
    counter = cluster.object_id("hot", COUNTER)
    assert cluster.lease_of(counter.key)[0] == first_id

    with Load([first, second], "hot") as load:

        def named_hot() -> bool:
            top = ok(staff.json("GET", "/api/objects/hot?limit=5"), second)["objects"]
            return bool(top) and (top[0]["id"], top[0]["owner"]) == (counter.hex, first_id)

        started = time.monotonic()
        wait_for(named_hot, 5, "the hot counter named with its owner", cluster.logs)
        print(f"named hot after {time.monotonic() - started:.2f} s")

        # A limit set through `second` is stored by the owner, `first`.
        status, body = send(
            staff, "PUT", f"/api/objects/{COUNTER}/{counter.hex}/limit", {"turns_per_s": 1000}
        )
        assert status == 200, body

        time.sleep(0.5)
        status, body = send(
            staff, "POST", f"/api/objects/{COUNTER}/{counter.hex}/move", {"host": second_id}
        )
        assert status == 202, body
        assert body["previous"] == first_id and body["owner"] == second_id, body
        assert cluster.lease_of(counter.key)[0] == second_id
        time.sleep(1.0)  # the load goes on against the new owner
    assert load.done > 20, load.done

    value = ok(first.get("/api/demo/counter/hot"), first)["value"]
    assert value == load.done + 1  # every increment applied once: nothing lost or doubled
    assert cluster.lease_of(counter.key)[0] == second_id

    detail = ok(staff.json("GET", f"/api/objects/{COUNTER}/{counter.hex}"), second)
    assert detail["lease"]["owner"] == second_id
    assert detail["limit"] == {"turns_per_s": 1000.0, "mailbox": None}  # it followed

    wait_for(
        lambda: any(
            o["id"] == counter.hex and o["owner"] == second_id
            for o in ok(staff.json("GET", "/api/objects/hot"), second)["objects"]
        ),
        5,
        "the hot list shows the new owner",
        cluster.logs,
    )
    status, body = send(
        staff, "POST", f"/api/objects/{COUNTER}/{counter.hex}/move", {"host": "nobody"}
    )
    assert status == 400 and body["error"] == "bad_request"
