"""Regressions found by the hostile-input tests, one per bug, in-process (Django's test
client, so no server is needed). A strict xfail is a bug still open: the day it is fixed,
the test passes, pytest fails it, and the marker (and the fuzz test's matching entry in
``KNOWN_BUGS``) must go."""

from __future__ import annotations

import pytest

# JSON nested 100,000 deep: json.loads raises RecursionError, which is not a ValueError.
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.mark.xfail(
    strict=True,
    reason="apps/ratelimit/api.py parses the body with json.loads catching only "
    "ValueError; deeply nested JSON raises RecursionError, answered 500 internal",
)
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_ratelimit_post_with_deeply_nested_json_is_a_400(client, body):
    response = client.post(
        "/api/ratelimit/demo/fuzz-key", data=body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]


@pytest.mark.xfail(
    strict=True,
    reason="config/views.py (demo counter) parses the body with json.loads catching only "
    "ValueError/AttributeError; deeply nested JSON raises RecursionError, answered 500",
)
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_demo_counter_post_with_deeply_nested_json_is_a_400(client, body):
    response = client.post("/api/demo/counter/fuzz", data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
