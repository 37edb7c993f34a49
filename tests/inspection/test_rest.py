"""Staff REST inspection in embedded mode: access control, what an object shows through
its owner and from its file, evict / delete / fire-alarm acting, bounded paging."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext

from durable_core import inspection
from durable_core.models import ObjectRecord
from durable_core.registry import get_namespace
from durable_core.storage.files import object_path

pytestmark = pytest.mark.django_db(transaction=True)

NS = "tests.Notes"
ZERO = "0" * 64


def routes(hex_id: str) -> list[tuple[str, str]]:
    base = f"/api/objects/{NS}/{hex_id}"
    return [
        ("get", "/api/objects/"),
        ("get", f"/api/objects/{NS}/"),
        ("get", base),
        ("post", base + "/evict"),
        ("post", base + "/alarm"),
        ("delete", base),
        ("get", "/api/hosts/"),
    ]


async def notes(name: str = "n1"):
    return get_namespace(NS).get_by_name(name)


async def test_anonymous_and_non_staff_are_refused_on_every_route(host, user_client):
    stub = await notes()
    await stub.put("k", 1)
    anonymous = AsyncClient()
    for method, url in routes(stub.id.hex):
        answer = await getattr(anonymous, method)(url)
        assert answer.status_code == 401, (method, url, answer.content)
        assert answer.json()["error"] == "not_authenticated"
        answer = await getattr(user_client, method)(url)
        assert answer.status_code == 403, (method, url, answer.content)
        assert answer.json()["error"] == "forbidden"
    assert await stub.get("k") == 1  # nothing was evicted or deleted


async def test_unsafe_methods_need_the_csrf_token(host, transactional_db):
    from django.contrib.auth import get_user_model

    user = await get_user_model().objects.acreate_user("s", password="pw", is_staff=True)
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    stub = await notes()
    await stub.put("k", 1)
    url = f"/api/objects/{NS}/{stub.id.hex}"
    assert (await client.post(url + "/evict")).status_code == 403
    assert (await client.delete(url)).status_code == 403
    assert (await client.get(url)).status_code == 200  # safe: no token needed
    token = (await client.get("/admin/")).cookies["csrftoken"].value
    ok = await client.post(url + "/evict", headers={"X-CSRFToken": token})
    assert ok.status_code == 202, ok.content


async def test_object_detail_through_the_owner_then_from_the_file(host, staff_client):
    stub = await notes()
    await stub.put("<b>greeting</b>", {"text": "hi", "n": [1, 2]})
    assert await stub.add("first") == 1
    assert await stub.add("second") == 2
    await stub.alarm_in(3600)
    url = f"/api/objects/{NS}/{stub.id.hex}"

    live = (await staff_client.get(url)).json()
    assert live["source"] == "owner"
    assert live["lease"]["owner"] == host.host_id
    assert live["lease"]["token"] == host.active[stub.id.key].lease.token
    assert 0 < live["lease"]["expires_in"] <= host.settings.lease_ttl
    assert live["storage"]["kv"] == {"<b>greeting</b>": {"text": "hi", "n": [1, 2]}}
    assert live["storage"]["keys"] == 1 and live["storage"]["bytes"] > 0
    [table] = live["storage"]["tables"]
    assert table["name"] == "notes" and table["rows"] == 2
    assert [c["name"] for c in table["columns"]] == ["id", "body"]
    assert table["page"]["rows"] == [[1, "first"], [2, "second"]]
    assert abs(live["alarm"] - (time.time() + 3600)) < 60
    assert live["websockets"]["count"] == 0

    host.active[stub.id.key].evict("idle")
    await host.active[stub.id.key].closed.wait() if stub.id.key in host.active else None
    cold = (await staff_client.get(url)).json()
    assert cold["source"] == "snapshot"
    assert stub.id.key not in host.active  # reading the file did not activate it
    assert cold["lease"]["owner"] is None and cold["lease"]["token"] == live["lease"]["token"]
    assert cold["storage"]["kv"] == live["storage"]["kv"]
    assert cold["storage"]["tables"] == live["storage"]["tables"]
    assert cold["alarm"] == live["alarm"]

    listing = (await staff_client.get(f"/api/objects/{NS}/")).json()
    assert [o["id"] for o in listing["objects"]] == [stub.id.hex]
    assert listing["objects"][0]["name"] == "n1" and listing["objects"][0]["active"] is False
    summary = (await staff_client.get("/api/objects/")).json()["namespaces"]
    assert {"namespace": NS, "objects": 1, "active": 0} in summary

    missing = await staff_client.get(f"/api/objects/{NS}/{ZERO}")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    unwritten = get_namespace(NS).get_by_name("never").id.hex
    assert (await staff_client.get(f"/api/objects/{NS}/{unwritten}")).status_code == 404


async def test_evict_then_the_next_call_activates_afresh(host, staff_client):
    stub = await notes()
    await stub.put("k", "v")
    starts = type(host.active[stub.id.key].instance).starts
    answer = await staff_client.post(f"/api/objects/{NS}/{stub.id.hex}/evict")
    assert answer.status_code == 202 and answer.json()["detail"] == "evicting"
    for _ in range(100):
        if stub.id.key not in host.active:
            break
        await asyncio.sleep(0.02)
    assert stub.id.key not in host.active
    again = await staff_client.post(f"/api/objects/{NS}/{stub.id.hex}/evict")
    assert again.status_code == 202 and again.json()["detail"] == "not active"
    assert await stub.get("k") == "v"  # storage kept
    assert type(host.active[stub.id.key].instance).starts == starts + 1  # on_start again


async def test_delete_removes_storage_and_the_object_starts_empty(host, staff_client):
    stub = await notes()
    await stub.put("k", "v")
    await stub.alarm_in(3600)
    token = host.active[stub.id.key].lease.token
    path = object_path(host.storage_dir, NS, stub.id.hex)
    assert path.exists()
    answer = await staff_client.delete(f"/api/objects/{NS}/{stub.id.hex}")
    assert answer.status_code == 204 and answer.content == b""
    assert not path.exists()
    record = await ObjectRecord.objects.aget(namespace=NS, object_id=stub.id.hex)
    assert record.deleted and record.alarm_at is None and record.fence_floor >= token
    assert await stub.get("k") is None  # a fresh, empty object
    assert host.active[stub.id.key].lease.token > token  # the fence floor held
    detail = (await staff_client.get(f"/api/objects/{NS}/{stub.id.hex}")).json()
    assert detail["deleted"] is True and detail["storage"]["kv"] == {}


async def test_fire_alarm_now_runs_on_alarm(host, staff_client):
    stub = await notes()
    url = f"/api/objects/{NS}/{stub.id.hex}/alarm"
    await stub.put("k", 1)
    assert (await staff_client.post(url)).status_code == 409  # no alarm yet
    await stub.alarm_in(3600)
    assert (await staff_client.post(url)).status_code == 202
    for _ in range(200):
        if await stub.get("alarm_ran"):
            break
        await asyncio.sleep(0.02)
    assert await stub.get("alarm_ran") is not None


async def test_bad_paging_input_is_a_400(host, staff_client):
    stub = await notes()
    await stub.put("k", 1)
    url = f"/api/objects/{NS}/{stub.id.hex}"
    for query in ("?kv_limit=0", "?kv_limit=100000", "?rows_after=-1", "?rows_limit=x"):
        answer = await staff_client.get(url + query)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request", query
    assert (await staff_client.get(f"/api/objects/{NS}/?limit=0")).status_code == 400


async def test_ten_thousand_keys_page_by_key_without_scans(host, staff_client):
    stub = await notes()
    for start in range(0, 10_000, 2_000):
        await stub.fill(start, 2_000)
    url = f"/api/objects/{NS}/{stub.id.hex}?kv_limit=1000"
    seen, after = [], None
    for _ in range(11):
        page = (await staff_client.get(url + (f"&kv_after={after}" if after else ""))).json()
        assert page["source"] == "owner"
        seen += list(page["storage"]["kv"])
        after = page["storage"]["kv_next"]
        if after is None:
            break
    assert seen == [f"k{i:05d}" for i in range(10_000)]

    # At the SQLite level, pages after the first seek by key: no statement scans _do_kv.
    path = object_path(host.storage_dir, NS, stub.id.hex)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    inspection.read_storage(conn, inspection.read_options(kv_after="k05000", kv_limit=1000))
    conn.set_trace_callback(None)
    kv_reads = [s for s in statements if "_do_kv" in s]
    assert kv_reads and all("key >" in s for s in kv_reads)
    for statement in kv_reads:
        plan = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + statement))
        assert "SCAN" not in plan, plan
    conn.close()


def test_five_thousand_objects_page_with_bounded_queries(transactional_db):
    """A sync test: the view's ORM queries then run in this thread, where they are counted."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    ObjectRecord.objects.bulk_create(
        [ObjectRecord(namespace=NS, object_id=f"{i:064x}", name=f"obj-{i}") for i in range(5_000)]
        + [ObjectRecord(namespace="tests.Other", object_id=f"{i:064x}") for i in range(500)]
    )
    client = Client()
    client.force_login(get_user_model().objects.create_user("s", password="pw", is_staff=True))
    seen, cursor, counts = [], None, []
    for _ in range(12):
        query = f"?limit=500&cursor={cursor}" if cursor else "?limit=500"
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/api/objects/{NS}/{query}").json()
        counts.append(len(queries))
        seen += [o["id"] for o in page["objects"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{i:064x}" for i in range(5_000)]
    assert len(counts) == 10 and max(counts) <= 3, counts  # session, user, one page query
    found = client.get(f"/api/objects/{NS}/?q=obj-4999").json()["objects"]
    assert [o["name"] for o in found] == ["obj-4999"]
    by_id = client.get(f"/api/objects/{NS}/?q={4999:064x}").json()
    assert [o["name"] for o in by_id["objects"]] == ["obj-4999"]

    # Searching a name prefix pages in name order (here 111 names start with obj-12).
    names, cursor = [], None
    for _ in range(5):
        query = "?q=obj-12&limit=50" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/api/objects/{NS}/{query}").json()
        names += [o["name"] for o in page["objects"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == sorted(n for n in (f"obj-{i}" for i in range(5_000)) if n.startswith("obj-12"))

    # Each page query is an index search; none scans the table.
    def plan(qs) -> list[str]:
        sql, params = qs.query.sql_with_params()
        with connection.cursor() as cur:
            cur.execute("EXPLAIN QUERY PLAN " + sql, params)
            return [str(row[-1]) for row in cur.fetchall()]

    for qs in (
        inspection.records_page(NS, "", None, 500),
        inspection.records_page(NS, "", f"{2500:064x}", 500),
        inspection.records_page(NS, "obj-12", None, 50),
        inspection.records_page(NS, "obj-12", f"{1250:064x}", 50),
    ):
        steps = plan(qs)
        assert all(step.startswith(("SEARCH", "SCALAR SUBQUERY")) for step in steps), steps
    # A hex search is two index ranges (name, id) whose matches are sorted: still no scan.
    for qs in (
        inspection.records_page(NS, f"{4999:064x}"[:20], None, 50),
        inspection.records_page(NS, "cafe1234", f"{12:064x}", 50),
    ):
        steps = plan(qs)
        assert not any(step.startswith("SCAN") for step in steps), steps

    # The admin list of the namespace: a bounded number of queries per page too.
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(f"/admin/durable_core/objectrecord/?namespace={NS}&p=40")
    assert answer.status_code == 200 and b"obj-" in answer.content
    assert len(queries) <= 8, [q["sql"] for q in queries]


def test_names_that_look_like_hex_are_found_by_name_and_ids_by_prefix(transactional_db):
    """Search both name and id prefix for a hex ``q`` (issue 16 §8), in the REST API and
    the admin: rooms, documents and devices are often named like ``cafe1234``."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    named = {"cafe1234": f"{1:064x}", "00012345": f"{2:064x}", "deadbeef-x": f"{3:064x}"}
    ObjectRecord.objects.bulk_create(
        [ObjectRecord(namespace=NS, object_id=i, name=n) for n, i in named.items()]
        + [ObjectRecord(namespace=NS, object_id="cafe1234" + "0" * 56, name="by-id")]
    )
    client = Client()
    client.force_login(get_user_model().objects.create_user("s", password="pw", is_staff=True))

    def search(q: str) -> list[str]:
        return [o["name"] for o in client.get(f"/api/objects/{NS}/?q={q}").json()["objects"]]

    assert sorted(search("cafe1234")) == ["by-id", "cafe1234"]
    assert search("00012345") == ["00012345"]
    assert search("deadbeef") == ["deadbeef-x"]
    assert search(f"{2:064x}") == ["00012345"]  # a whole id still finds its object
    admin = client.get("/admin/durable_core/objectrecord/?q=00012345").content.decode()
    assert "00012345" in admin
