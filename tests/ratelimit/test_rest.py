"""The REST API against a real server process (``manage.py runserver``, embedded mode)."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.ratelimit._checks import StructuredFieldError, parse_item, parse_list

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(server, method, policy, key, payload=None, raw=None, headers=None, quote=True):
    """(status, headers, body) of one request to /api/ratelimit/<policy>/<key>."""
    path_key = urllib.parse.quote(key, safe="/") if quote else key
    url = f"{server.url}/api/ratelimit/{urllib.parse.quote(policy)}/{path_key}"
    data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _opener.open(request, timeout=15) as response:
            status, got, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, got, body = exc.code, exc.headers, exc.read()
    return status, got, json.loads(body)


def limit_headers(headers):
    """The two ratelimit fields, parsed as RFC 8941 structured fields."""
    policy = parse_list(headers["RateLimit-Policy"])
    state = parse_list(headers["RateLimit"])
    assert len(policy) == 1 and len(state) == 1
    return policy[0], state[0]


def test_consume_answers_the_contract_body_and_structured_headers(rl_server):
    status, headers, body = call(rl_server, "POST", "t5", "body-and-headers")
    assert status == 200
    assert set(body) >= {"allowed", "limit", "remaining", "reset_after", "retry_after"}
    assert body["allowed"] is True and body["limit"] == 5 and body["remaining"] == 4
    assert body["retry_after"] == 0 and 29 < body["reset_after"] <= 30
    assert isinstance(body["reset_after"], float) and isinstance(body["retry_after"], float)
    (name, params), (name2, state) = limit_headers(headers)
    assert name == name2 == "t5"
    assert params == {"q": 5, "w": 30}
    assert state == {"r": 4, "t": 30}
    assert "Retry-After" not in headers


def test_remaining_drops_by_exactly_the_cost_and_429_carries_retry_after(rl_server):
    seen = []
    for cost in (2, 1, 2):
        status, headers, body = call(rl_server, "POST", "t5", "costs", {"cost": cost})
        assert status == 200
        seen.append(limit_headers(headers)[1][1]["r"])
    assert seen == [3, 2, 0]
    status, headers, body = call(rl_server, "POST", "t5", "costs")
    assert status == 429
    assert body["error"] == "rate_limited" and body["message"]
    assert body["allowed"] is False and body["remaining"] == 0
    assert limit_headers(headers)[1][1]["r"] == 0
    retry = parse_item(headers["Retry-After"])[0]
    assert isinstance(retry, int) and retry == math.ceil(body["retry_after"])


def test_peek_consumes_nothing(rl_server):
    call(rl_server, "POST", "t5", "peeked", {"cost": 3})
    for _ in range(3):
        status, headers, body = call(rl_server, "GET", "t5", "peeked")
        assert status == 200 and body["remaining"] == 2 and body["allowed"] is True
    call(rl_server, "POST", "t5", "peeked", {"cost": 2})
    status, headers, body = call(rl_server, "GET", "t5", "peeked")
    assert status == 429 and body["remaining"] == 0 and "Retry-After" in headers


def test_retry_after_is_truthful_sleep_it_then_succeed(rl_server):
    """A 429's Retry-After (and the body's retry_after) is enough; earlier is refused."""
    first = call(rl_server, "POST", "t2", "truthful")[2]
    assert call(rl_server, "POST", "t2", "truthful")[0] == 200
    status, headers, body = call(rl_server, "POST", "t2", "truthful")
    assert status == 429
    header = int(headers["Retry-After"])
    assert header == math.ceil(body["retry_after"]) and body["retry_after"] <= 2
    # Just before the float retry_after (measured from the decision), still refused.
    too_early = body["at"] + body["retry_after"] - 0.3
    time.sleep(max(0.0, too_early - time.time()))
    early = call(rl_server, "POST", "t2", "truthful")
    if early[2]["at"] < body["at"] + body["retry_after"]:  # decided before it was due
        assert early[0] == 429, early
    time.sleep(header)
    status, _, after = call(rl_server, "POST", "t2", "truthful")
    assert status == 200, after
    assert after["at"] - first["at"] >= 2


def test_unknown_policy_is_404_and_bad_input_400_in_the_error_shape(rl_server):
    status, _, body = call(rl_server, "POST", "no-such-policy", "k")
    assert status == 404 and body["error"] == "not_found"
    assert call(rl_server, "GET", "no-such-policy", "k")[0] == 404
    for payload in ({"cost": 0}, {"cost": 6}, {"cost": -1}, {"cost": 1.5}, {"cost": "2"}):
        status, _, body = call(rl_server, "POST", "t5", "bad-cost", payload)
        assert status == 400 and body["error"] == "bad_request" and body["message"], payload
    for raw in (b"{not json", b"[1, 2]", b'"cost"'):
        status, _, body = call(rl_server, "POST", "t5", "bad-body", raw=raw)
        assert status == 400 and body["error"] == "bad_request", raw
    assert call(rl_server, "POST", "t5", "x" * 257)[0] == 400
    assert call(rl_server, "POST", "t5", "")[0] == 400
    assert call(rl_server, "GET", "t5", "")[0] == 400
    assert call(rl_server, "POST", "no-such-policy", "")[0] == 404
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError, not ValueError
    assert call(rl_server, "POST", "t5", "deep", raw=deep)[0] == 400
    assert call(rl_server, "POST", "t5", "tab%09key", quote=False)[0] == 400
    assert call(rl_server, "POST", "t5", "nul%00key", quote=False)[0] == 400
    status, _, body = call(rl_server, "POST", "t5", "k", headers={"Idempotency-Key": "bad key!"})
    assert status == 400 and body["error"] == "bad_request"


def test_any_printable_key_works_including_slashes(rl_server):
    for key in ("a/b/c", "with space", "ünïcødé✓", "x" * 256, "a:b", "?#&=%", "trailing/"):
        status, _, body = call(rl_server, "POST", "t5", key)
        assert status == 200 and body["remaining"] == 4, (key, body)
        assert call(rl_server, "GET", "t5", key)[2]["remaining"] == 4
    # Percent-encoded and literal slashes name the same key.
    assert call(rl_server, "GET", "t5", "a%2Fb%2Fc", quote=False)[2]["remaining"] == 4


def test_policy_names_needing_quotes_still_give_valid_structured_fields(rl_server):
    status, headers, _ = call(rl_server, "POST", "odd name", "k")
    assert status == 200
    (name, params), _ = limit_headers(headers)
    assert name == "odd name" and params == {"q": 3, "w": 2}  # 1.5 s: integer, rounded up


def test_idempotency_key_counts_a_retried_request_once(rl_server):
    for _ in range(3):
        status, _, body = call(rl_server, "POST", "t5", "idem", headers={"Idempotency-Key": "r-1"})
        assert status == 200 and body["remaining"] == 4
    assert call(rl_server, "POST", "t5", "idem")[2]["remaining"] == 3


def test_hundreds_of_concurrent_callers_on_one_key_never_see_a_5xx(rl_server):
    def one(_):
        return call(rl_server, "POST", "big", "stampede")[0]

    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(one, range(600)))
    assert statuses.count(200) == 50
    assert statuses.count(429) == 550, sorted(set(statuses))


def test_the_structured_field_parser_rejects_what_it_should():
    assert parse_item('"a\\"b";q=1;w=2.5') == ('a"b', {"q": 1, "w": 2.5})
    for bad in ('"unterminated', "a;Q=1", '"x";q=1.2345', '"x" junk', "1,"):
        with pytest.raises(StructuredFieldError):
            parse_list(bad)


def test_a_policy_that_is_not_public_cannot_be_spent_or_read_over_rest(rl_server):
    """Chat's per-IP policy ("public": False) is spent by the chat app only: over REST
    anyone could otherwise drain another client's quota by naming its address."""
    for method in ("POST", "GET"):
        status, _, body = call(rl_server, method, "chat", "127.0.0.1")
        assert status == 404 and body["error"] == "not_found", (method, body)
    assert call(rl_server, "POST", "chat", "")[0] == 404
