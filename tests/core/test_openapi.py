"""/api/openapi.json documents every route's body, answer and errors (issue 20), and the
answers the routes really give match what it documents.

The first tests walk the document alone; the last one calls the public apps' routes on
an embedded host and validates each answer (status and JSON body) against the schema the
document gives for that status, so a schema that drifts from the wire format fails here.
"""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from django.test import AsyncClient, Client

from durable_core.testing import object_host

METHODS = ("get", "put", "post", "patch", "delete")
# Operations that take no body by design (their POST is an action on the path alone).
BODILESS = {
    ("post", "/api/chat/rooms"),
    ("post", "/api/objects/{namespace}/{object_id}/evict"),
    ("post", "/api/objects/{namespace}/{object_id}/alarm"),
}
# Path parameters that filter rather than address: an unknown namespace lists nothing (200).
NEVER_404 = {("get", "/api/objects/{namespace}/")}


@pytest.fixture(scope="module")
def document() -> dict:
    return Client(HTTP_HOST="127.0.0.1").get("/api/openapi.json").json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def resolve(document: dict, schema: dict) -> dict:
    """A ``$ref`` (or a one-element ``allOf`` around one) to the schema it names."""
    while True:
        if "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif len(schema.get("allOf", ())) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def json_schema(response_or_body: dict) -> dict | None:
    return response_or_body.get("content", {}).get("application/json", {}).get("schema")


def test_the_document_lists_every_app_and_the_inspection_routes(document):
    prefixes = {path.split("/")[2] for path in document["paths"]}
    assert {"objects", "hosts", "demo", "chat", "documents", "ratelimit", "devices"} <= prefixes
    assert len(list(operations(document))) >= 25


def test_every_operation_documents_a_2xx_answer_with_its_schema(document):
    missing = []
    for method, path, operation in operations(document):
        ok = {s: r for s, r in operation["responses"].items() if str(s).startswith("2")}
        if not ok:
            missing.append(f"{method} {path}: no 2xx")
        for status, response in ok.items():
            if str(status) != "204" and json_schema(response) is None:
                missing.append(f"{method} {path}: {status} has no JSON schema")
    assert not missing, "\n".join(missing)


def test_every_operation_that_takes_a_body_documents_its_schema(document):
    """Every POST/PUT/PATCH declares an object schema with properties for its JSON body,
    unless it is one of the few actions that take none (a hand-parsed body fails here)."""
    missing = []
    for method, path, operation in operations(document):
        if method not in ("post", "put", "patch"):
            continue
        body = operation.get("requestBody")
        if body is None:
            if (method, path) not in BODILESS:
                missing.append(f"{method} {path}: no requestBody")
            continue
        schema = json_schema(body)
        if schema is None or not resolve(document, schema).get("properties"):
            missing.append(f"{method} {path}: requestBody without an object schema")
    assert not missing, "\n".join(missing)


def test_every_operation_documents_the_errors_its_inputs_can_cause(document):
    """Path parameters → 404, a body, query or header parameters → 400, staff auth →
    401 and 403; every operation that takes any input declares at least one error."""
    missing = []
    for method, path, operation in operations(document):
        documented = {str(status) for status in operation["responses"]}
        places = {p["in"] for p in operation.get("parameters", ())}
        needed = set()
        if "path" in places and (method, path) not in NEVER_404:
            needed.add("404")
        if places & {"query", "header"} or "requestBody" in operation:
            needed.add("400")
        if operation.get("security"):
            needed |= {"401", "403"}
        if needed - documented:
            missing.append(f"{method} {path}: undocumented {sorted(needed - documented)}")
        if (places or "requestBody" in operation) and not any(s[0] in "45" for s in documented):
            missing.append(f"{method} {path}: takes input but documents no error")
    assert not missing, "\n".join(missing)


def test_every_error_answer_has_the_contracts_error_shape(document):
    """Each 4xx/5xx answer is ``{"error", "message", ...}`` (ErrorOut or a subclass)."""
    wrong = []
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if str(status)[0] not in "45":
                continue
            schema = json_schema(response)
            required = set(resolve(document, schema).get("required", ())) if schema else set()
            if not {"error", "message"} <= required:
                wrong.append(f"{method} {path} {status}")
    assert not wrong, "\n".join(wrong)


def test_the_device_twin_and_rate_limit_bodies_say_what_the_contract_says(document):
    paths = document["paths"]
    patch = paths["/api/devices/{device_id}/twin"]["patch"]
    body = resolve(document, json_schema(patch["requestBody"]))
    assert {"state", "version", "client_token", "clientToken"} <= set(body["properties"])
    assert body["additionalProperties"] is False  # unknown top-level keys are a 400
    conflict = resolve(document, json_schema(patch["responses"]["409"]))
    assert "version" in conflict["required"]
    written = resolve(document, json_schema(patch["responses"]["200"]))
    assert {"client_token", "clientToken", "state", "metadata"} <= set(written["properties"])
    consume = paths["/api/ratelimit/{policy}/{key}"]["post"]
    assert "cost" in resolve(document, json_schema(consume["requestBody"]))["properties"]
    assert consume["requestBody"]["required"] is False
    assert "Idempotency-Key" in {p["name"] for p in consume["parameters"]}
    refused = consume["responses"]["429"]
    fields = {"allowed", "limit", "remaining", "reset_after", "retry_after"}
    assert fields | {"error", "message"} <= set(resolve(document, json_schema(refused))["required"])
    assert {"RateLimit", "RateLimit-Policy", "Retry-After"} <= set(refused["headers"])


# -- the answers match the document --------------------------------------------------------


def answer_validator(document: dict, path: str, method: str, status: int):
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method} {path} answered an undocumented {status}"
    schema = json_schema(responses[str(status)])
    # The whole document as the root, so that the component $refs resolve.
    root = {**schema, "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root)


@pytest.mark.django_db(transaction=True)
async def test_real_answers_and_errors_match_their_documented_schemas(tmp_path, settings):
    settings.CREATE_RATE_LIMIT = "0"
    document = json.loads((await AsyncClient().get("/api/openapi.json")).content)
    client = AsyncClient(HTTP_HOST="127.0.0.1")
    twin = "/api/devices/{device_id}/twin"
    telemetry = "/api/devices/{device_id}/telemetry"
    limit = "/api/ratelimit/{policy}/{key}"
    messages = "/api/chat/rooms/{room}/messages"
    edits = "/api/documents/{name}/edits"
    calls = [
        # (documented path, method, concrete path, body, expected status)
        (twin, "patch", "/api/devices/oa-1/twin", {"state": {"desired": {"a": 1}}}, 200),
        (
            twin,
            "patch",
            "/api/devices/oa-1/twin",
            {"state": {"reported": {"a": 1}}, "clientToken": "c-1"},
            200,
        ),
        (twin, "patch", "/api/devices/oa-1/twin", {"state": {"desired": {}}, "version": 1}, 409),
        (twin, "patch", "/api/devices/oa-1/twin", {"state": {}, "extra": 1}, 400),
        (twin, "get", "/api/devices/oa-1/twin", None, 200),
        (twin, "get", "/api/devices/oa-none/twin", None, 404),
        ("/api/devices/", "post", "/api/devices/", {"device_id": "oa-2"}, 201),
        ("/api/devices/", "post", "/api/devices/", {"device_id": "oa-2"}, 409),
        ("/api/devices/", "get", "/api/devices/", None, 200),
        (telemetry, "post", "/api/devices/oa-1/telemetry", {"metrics": {"t": 1.5}}, 202),
        (telemetry, "get", "/api/devices/oa-1/telemetry?metric=t", None, 200),
        (telemetry, "get", "/api/devices/oa-1/telemetry?metric=t&limit=x", None, 400),
        ("/api/devices/{device_id}/metrics", "get", "/api/devices/oa-1/metrics", None, 200),
        (twin, "delete", "/api/devices/oa-1/twin", None, 204),
        (limit, "post", "/api/ratelimit/demo/oa", {"cost": 10}, 200),
        (limit, "post", "/api/ratelimit/demo/oa", None, 429),
        (limit, "get", "/api/ratelimit/demo/oa", None, 429),
        (limit, "post", "/api/ratelimit/demo/oa", [1, 2], 400),
        (limit, "get", "/api/ratelimit/no-such-policy/oa", None, 404),
        (messages, "post", "/api/chat/rooms/oa/messages", {"name": "ann", "text": "hi"}, 201),
        (messages, "get", "/api/chat/rooms/oa/messages?limit=500", None, 400),
        (messages, "get", "/api/chat/rooms/oa/messages", None, 200),
        ("/api/chat/rooms/{room}", "get", "/api/chat/rooms/oa", None, 200),
        (edits, "post", "/api/documents/oa/edits", {"index": 0, "insert": "hello"}, 200),
        (edits, "post", "/api/documents/oa/edits", {"index": 99, "delete": 1}, 400),
        ("/api/documents/{name}", "get", "/api/documents/oa", None, 200),
        ("/api/demo/counter/{name}", "post", "/api/demo/counter/oa", {"by": 2}, 200),
        ("/api/demo/counter/{name}", "get", "/api/demo/counter/bad!name", None, 404),
    ]
    async with object_host(tmp_path / "objects"):
        for documented, method, concrete, body, expected in calls:
            response = await client.generic(
                method.upper(),
                concrete,
                b"" if body is None else json.dumps(body),
                content_type="application/json",
            )
            where = f"{method} {concrete} {body}"
            assert response.status_code == expected, (where, response.content[:300])
            if expected == 204:
                assert not response.content, where
                continue
            validator = answer_validator(document, documented, method, expected)
            answer = json.loads(response.content)
            errors = [str(error) for error in validator.iter_errors(answer)]
            assert not errors, (where, answer, errors)
            # and no field the document does not name
            schema = json_schema(document["paths"][documented][method]["responses"][str(expected)])
            named = set(resolve(document, schema)["properties"])
            assert set(answer) <= named, (where, set(answer) - named)
