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


def test_a_body_over_the_upload_limit_is_a_json_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post(
        "/api/demo/counter/big",
        data=b'{"by": 1, "pad": "' + b"x" * 5000 + b'"}',
        content_type="application/json",
    )
    assert response.status_code == 413, response.content
    assert response.json()["error"] == "too_large"


def test_absurdly_nested_json_is_a_400_not_a_500(client):
    response = client.post(
        "/api/demo/counter/deep", data=b"[" * 50_000, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "bad_request"


def test_unknown_routes_and_wrong_methods_are_json_whatever_the_method(client):
    csrf_client = Client(HTTP_HOST="127.0.0.1", enforce_csrf_checks=True)
    response = csrf_client.post("/api/no/such/route/", data={})
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    response = csrf_client.post("/healthz")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


async def test_unknown_websocket_paths_are_refused_with_4404():
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from config.routing import websocket_urlpatterns

    for path in ("/ws/nope/", "/ws/chat/%2F/", "/elsewhere"):
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
        connected, code = await communicator.connect(timeout=5)
        assert (connected, code) == (False, 4404), path
