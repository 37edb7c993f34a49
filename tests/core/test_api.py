"""Staff-only runtime endpoints and the public health check."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from durable_core.testing import object_host

pytestmark = pytest.mark.django_db(transaction=True)


async def test_hosts_requires_staff(tmp_path):
    async with object_host(tmp_path / "o"):
        client = AsyncClient()
        anonymous = await client.get("/api/hosts/")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "not_authenticated"
        await get_user_model().objects.acreate_user("joe", password="pw")
        await client.alogin(username="joe", password="pw")
        assert (await client.get("/api/hosts/")).status_code == 403


async def test_hosts_lists_this_embedded_host_for_staff(tmp_path):
    async with object_host(tmp_path / "o") as host:
        await get_user_model().objects.acreate_superuser("root", "r@x", "pw")
        client = AsyncClient()
        await client.alogin(username="root", password="pw")
        body = (await client.get("/api/hosts/")).json()
        assert [h["id"] for h in body["hosts"]] == [host.host_id]
        assert body["hosts"][0]["alive"] is True


async def test_healthz_reports_mode_host_and_pid(tmp_path):
    import os

    client = AsyncClient()
    down = await client.get("/healthz")
    assert down.status_code == 503 and down.json()["ok"] is False
    async with object_host(tmp_path / "o") as host:
        body = (await client.get("/healthz")).json()
    assert body == {"ok": True, "mode": "embedded", "host": host.host_id, "pid": os.getpid()}
