"""Staff operations in embedded mode (CONTRACT § Operations): the hot-objects route, a
per-object limit that sheds excess callers before they cost a turn and follows the
object through its storage, and the move route's answers."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.test import AsyncClient

from durable_core.exceptions import ObjectOverloaded
from durable_core.registry import get_namespace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

NS = "tests.Notes"


def notes(name: str):
    return get_namespace(NS).get_by_name(name)


def routes(hex_id: str) -> list[tuple[str, str, dict | None]]:
    base = f"/api/objects/{NS}/{hex_id}"
    return [
        ("get", "/api/objects/hot", None),
        ("put", base + "/limit", {"turns_per_s": 1}),
        ("post", base + "/move", {"host": "x"}),
    ]


async def send(client: AsyncClient, method: str, url: str, body: dict | None = None):
    if body is None:
        return await getattr(client, method)(url)
    return await getattr(client, method)(
        url, data=json.dumps(body), content_type="application/json"
    )


async def test_operations_are_staff_only(host, user_client):
    stub = notes("n1")
    await stub.put("k", 1)
    for method, url, body in routes(stub.id.hex):
        answer = await send(AsyncClient(), method, url, body)
        assert answer.status_code == 401 and answer.json()["error"] == "not_authenticated"
        answer = await send(user_client, method, url, body)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert host.active[stub.id.key].limit is None  # nothing was set


async def test_the_hot_route_names_the_object_driven_hot_with_its_owner(host, staff_client):
    hottest, others = notes("hottest"), [notes(f"n{i}") for i in range(10)]

    async def drive(stub, n):
        for i in range(n):
            await stub.put("k", i)

    await asyncio.gather(drive(hottest, 200), *(drive(s, 3) for s in others))
    answer = await staff_client.get("/api/objects/hot?limit=3")
    assert answer.status_code == 200, answer.content
    top = answer.json()["objects"]
    assert len(top) == 3
    assert (top[0]["namespace"], top[0]["id"], top[0]["name"]) == (NS, hottest.id.hex, "hottest")
    assert top[0]["owner"] == host.host_id
    assert top[0]["turns_per_s"] > 0 and 0 < top[0]["busy"] <= 1
    assert set(top[0]) >= {"turns_per_s", "busy", "mailbox", "rejected", "heat"}
    by_turns = (await staff_client.get("/api/objects/hot?by=turns_per_s")).json()["objects"]
    assert by_turns[0]["id"] == hottest.id.hex
    for bad in ("limit=0", "limit=1000", "by=nonsense", "limit=x"):
        answer = await staff_client.get(f"/api/objects/hot?{bad}")
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request", bad


async def test_a_limit_sheds_excess_callers_before_their_turn_and_spares_the_others(
    host, staff_client
):
    limited, other = notes("limited"), notes("other")
    await limited.put("k", 0)
    await other.put("k", 0)
    url = f"/api/objects/{NS}/{limited.id.hex}/limit"
    answer = await send(staff_client, "put", url, {"turns_per_s": 5})
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"limit": {"turns_per_s": 5.0, "mailbox": None}}
    turns_before = host.active[limited.id.key].turns

    results = await asyncio.gather(*(limited.get("k") for _ in range(40)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, ObjectOverloaded)]
    assert len(refused) >= 30 and all(r == 0 or isinstance(r, ObjectOverloaded) for r in results)
    assert all(0 < r.retry_after <= 1 for r in refused)
    assert host.active[limited.id.key].turns - turns_before == 40 - len(refused)  # no turn
    assert [await other.get("k") for _ in range(40)] == [0] * 40  # the other is not limited

    hot = (await staff_client.get("/api/objects/hot")).json()
    assert any(e["id"] == limited.id.hex and e["limited"] for e in hot["overloads"])

    detail = (await staff_client.get(f"/api/objects/{NS}/{limited.id.hex}")).json()
    assert detail["limit"] == {"turns_per_s": 5.0, "mailbox": None}


async def test_a_limit_is_stored_with_the_object_and_survives_its_eviction(host, staff_client):
    stub = notes("kept")
    await stub.put("k", 1)
    url = f"/api/objects/{NS}/{stub.id.hex}/limit"
    assert (await send(staff_client, "put", url, {"mailbox": 3})).status_code == 200
    active = host.active[stub.id.key]
    active.evict("idle")
    await active.closed.wait()
    detail = (await staff_client.get(f"/api/objects/{NS}/{stub.id.hex}")).json()
    assert detail["source"] == "snapshot" and detail["limit"] == {"turns_per_s": None, "mailbox": 3}
    await stub.get("k")  # activates afresh: the limit is read back from storage
    assert host.active[stub.id.key].limit.as_dict() == {"turns_per_s": None, "mailbox": 3}
    answer = await send(staff_client, "put", url, {"turns_per_s": None})
    assert answer.status_code == 200 and answer.json() == {"limit": None}
    assert host.active[stub.id.key].limit is None


async def test_bad_limits_and_moves_are_refused_in_json(host, staff_client):
    stub = notes("bad")
    await stub.put("k", 1)
    url = f"/api/objects/{NS}/{stub.id.hex}"
    for body in ({"turns_per_s": 0}, {"turns_per_s": -1}, {"mailbox": 0}, {"other": 1}):
        answer = await send(staff_client, "put", url + "/limit", body)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request", body
    answer = await send(staff_client, "put", f"/api/objects/{NS}/{'0' * 64}/limit", {"mailbox": 1})
    assert answer.status_code == 404
    answer = await send(staff_client, "post", url + "/move", {"host": host.host_id})
    assert answer.status_code == 409 and answer.json()["error"] == "not_cluster"
    answer = await send(staff_client, "post", url + "/move", {})
    assert answer.status_code == 400


async def test_a_limited_object_answers_503_with_retry_after_at_the_http_edge(host, staff_client):
    counter = get_namespace("demo.Counter").get_by_name("edge")
    await counter.increment()
    url = f"/api/objects/demo.Counter/{counter.id.hex}/limit"
    assert (await send(staff_client, "put", url, {"turns_per_s": 1})).status_code == 200
    client = AsyncClient()
    answers = [
        await client.post("/api/demo/counter/edge", data="{}", content_type="application/json")
        for _ in range(3)
    ]
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 200 and 503 in statuses, statuses
    refused = answers[statuses.index(503)]
    assert refused.json()["error"] == "overloaded" and int(refused["Retry-After"]) >= 1
