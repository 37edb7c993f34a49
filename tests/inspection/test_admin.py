"""The Django admin for durable objects: login required, values escaped, actions act."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.test import AsyncClient

from durable_core.models import ObjectRecord
from durable_core.registry import get_namespace
from durable_core.storage.files import object_path

pytestmark = pytest.mark.django_db(transaction=True)

NS = "tests.Notes"
LIST = "/admin/durable_core/objectrecord/"


async def request(client: AsyncClient, method: str, url: str):
    """One request with its own thread for sync views, as Django's ASGI handler gives
    each request (the test client alone runs them in the one shared thread)."""
    async with ThreadSensitiveContext():
        return await getattr(client, method)(url)


async def record_of(stub) -> ObjectRecord:
    return await ObjectRecord.objects.aget(namespace=NS, object_id=stub.id.hex)


async def test_anonymous_and_non_staff_get_the_login_page(host, user_client):
    stub = get_namespace(NS).get_by_name("a")
    await stub.put("k", 1)
    record = await record_of(stub)
    anonymous = AsyncClient()
    for url in (LIST, f"{LIST}{record.pk}/change/", f"{LIST}{record.pk}/delete-storage/"):
        for client in (anonymous, user_client):
            answer = await client.get(url)
            assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")
    for url in (f"{LIST}{record.pk}/evict/", f"{LIST}{record.pk}/delete-storage/"):
        answer = await anonymous.post(url)
        assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")
    login = await anonymous.get("/admin/login/")
    assert login.status_code == 200 and b'name="password"' in login.content
    assert await stub.get("k") == 1


async def test_object_page_shows_escaped_values_tables_and_lease(host, staff_client):
    stub = get_namespace(NS).get_by_name("<i>evil</i>")
    await stub.put("<script>alert('key')</script>", "<script>alert('value')</script>")
    await stub.add("<img src=x onerror=alert(1)>")
    await stub.alarm_in(3600)
    record = await record_of(stub)

    listing = await request(staff_client, "get", f"{LIST}?namespace={NS}")
    assert listing.status_code == 200
    assert b"&lt;i&gt;evil&lt;/i&gt;" in listing.content and b"<i>evil</i>" not in listing.content

    page = await request(staff_client, "get", f"{LIST}{record.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    for raw in ("<script>alert(", "<img src=x", "<i>evil</i>"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(&#x27;key&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert host.host_id in html  # the lease holder
    assert str(host.active[stub.id.key].lease.token) in html
    assert 'data-table="notes"' in html and "1 row" in html
    assert "read through the owner, as a turn" in html


async def test_admin_actions_evict_fire_alarm_and_delete_with_confirmation(host, staff_client):
    stub = get_namespace(NS).get_by_name("acted")
    await stub.put("k", "v")
    await stub.alarm_in(3600)
    record = await record_of(stub)

    fired = await request(staff_client, "post", f"{LIST}{record.pk}/fire-alarm/")
    assert fired.status_code == 302
    for _ in range(200):
        if await stub.get("alarm_ran"):
            break
        await asyncio.sleep(0.02)
    assert await stub.get("alarm_ran") is not None

    evicted = await request(staff_client, "post", f"{LIST}{record.pk}/evict/")
    assert evicted.status_code == 302
    for _ in range(100):
        if stub.id.key not in host.active:
            break
        await asyncio.sleep(0.02)
    assert stub.id.key not in host.active
    cold = (await request(staff_client, "get", f"{LIST}{record.pk}/change/")).content.decode()
    assert "read-only snapshot" in cold and "not active" in cold
    assert stub.id.key not in host.active

    confirm = await request(staff_client, "get", f"{LIST}{record.pk}/delete-storage/")
    assert confirm.status_code == 200 and b"Yes, delete its storage" in confirm.content
    assert object_path(host.storage_dir, NS, stub.id.hex).exists()  # GET deletes nothing
    deleted = await request(staff_client, "post", f"{LIST}{record.pk}/delete-storage/")
    assert deleted.status_code == 302 and deleted["Location"] == LIST
    assert not object_path(host.storage_dir, NS, stub.id.hex).exists()
    assert (await record_of(stub)).deleted
    assert await stub.get("k") is None
