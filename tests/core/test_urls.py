"""durable_core.urls: healthz, metrics and the staff API with its own NinjaAPI, answering
every error in JSON without the demo's middleware (CONTRACT § Adopting durable_core)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.urls import reverse

from durable_core.registry import get_namespace
from durable_core.testing import object_host

pytestmark = [pytest.mark.urls("tests.core.adopting_urls"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def staff_client():
    user = await get_user_model().objects.acreate_user("staff", password="pw", is_staff=True)
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    return client


async def test_healthz_and_metrics_are_served_under_the_include_prefix(tmp_path):
    client = AsyncClient()
    assert (await client.get("/durable/healthz")).status_code == 503  # no host yet
    async with object_host(tmp_path / "objects"):
        health = await client.get(reverse("durable_core_healthz"))
        assert health.status_code == 200
        assert health.json()["ok"] is True
        metrics = await client.get("/durable/metrics")
        assert metrics.status_code == 200
        assert b"durable_active_objects" in metrics.content


async def test_the_staff_api_lists_objects_for_staff_and_refuses_anonymous_in_json(
    tmp_path, staff_client
):
    anonymous = await AsyncClient().get("/durable/api/objects/")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "not_authenticated"
    async with object_host(tmp_path / "objects"):
        await get_namespace("demo.Counter").get_by_name("adopted").increment()
        listed = await staff_client.get("/durable/api/objects/")
        assert listed.status_code == 200
        assert {"namespace": "demo.Counter", "objects": 1, "active": 1} in listed.json()[
            "namespaces"
        ]
        hosts = await staff_client.get(reverse("durable_core_api:list_hosts"))
        assert hosts.status_code == 200 and len(hosts.json()["hosts"]) == 1


async def test_errors_of_the_included_api_are_json_without_the_demo_middleware(staff_client):
    """Unknown route, wrong method and a missing CSRF token: JSON answers, no HTML page."""
    unknown = await staff_client.get("/durable/api/nothing/here")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    wrong_method = await staff_client.put("/durable/api/hosts/")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
    assert "GET" in wrong_method["Allow"]
    no_csrf = await staff_client.post(f"/durable/api/objects/demo.Counter/{'0' * 64}/evict")
    assert no_csrf.status_code == 403
    assert no_csrf["Content-Type"].startswith("application/json")


async def test_the_included_api_has_its_own_openapi_document_and_docs_page():
    client = AsyncClient()
    schema = (await client.get("/durable/api/openapi.json")).json()
    assert "/durable/api/objects/" in schema["paths"]
    assert "/durable/api/hosts/" in schema["paths"]
    assert not any(p.startswith("/durable/api/chat") for p in schema["paths"])
    assert (await client.get("/durable/api/docs")).status_code == 200


async def test_the_openapi_document_declares_each_routes_error_answers():
    schema = (await AsyncClient().get("/durable/api/openapi.json")).json()
    paths = schema["paths"]
    evict = paths["/durable/api/objects/{namespace}/{object_id}/evict"]["post"]["responses"]
    assert {"202", "401", "403", "404"} <= set(evict)
    error = evict["404"]["content"]["application/json"]["schema"]
    assert error["$ref"].endswith("/ErrorOut")
    assert set(schema["components"]["schemas"]["ErrorOut"]["required"]) == {"error", "message"}
    alarm = paths["/durable/api/objects/{namespace}/{object_id}/alarm"]["post"]["responses"]
    assert "409" in alarm
    assert {"200", "401", "403"} <= set(paths["/durable/api/hosts/"]["get"]["responses"])
