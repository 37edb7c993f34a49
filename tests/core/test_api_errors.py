"""Every route under /api/ answers errors as JSON (CONTRACT: never an HTML page)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(HTTP_HOST="127.0.0.1")


def api_paths(client) -> dict[str, set[str]]:
    schema = client.get("/api/openapi.json").json()
    return {
        re.sub(r"\{[^}]+\}", "x", path): {m.upper() for m in methods}
        for path, methods in schema["paths"].items()
    }


def test_unsupported_methods_get_a_json_405_with_allow(client):
    paths = api_paths(client)
    assert len(paths) >= 10, sorted(paths)
    for path, methods in paths.items():
        unsupported = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in methods)
        response = client.generic(unsupported, path)
        assert response.status_code == 405, (path, unsupported, response.status_code)
        assert response["Content-Type"].startswith("application/json"), path
        assert response.json()["error"] == "method_not_allowed", path
        assert response["Allow"], path


def test_unknown_api_routes_get_a_json_404(client):
    response = client.get("/api/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
