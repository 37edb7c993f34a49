"""RateLimit headers exactly as the IETF draft says: integer ``w`` and ``t``, and on a
429 ``t`` equal to ``Retry-After``."""

from __future__ import annotations

from apps.ratelimit._http import rate_limit_headers
from apps.ratelimit.service import Decision
from tests.ratelimit._checks import parse_list


def decision(**overrides) -> Decision:
    fields = dict(
        allowed=True,
        limit=5,
        remaining=4,
        reset_after=9.2,
        retry_after=0.0,
        policy="p",
        period=10.0,
        at=0.0,
    )
    fields.update(overrides)
    return Decision(**fields)


def test_a_fractional_period_gives_an_integer_window_rounded_up():
    headers = rate_limit_headers(decision(period=2.5, reset_after=2.1))
    assert parse_list(headers["RateLimit-Policy"]) == [("p", {"q": 5, "w": 3})]
    assert parse_list(headers["RateLimit"]) == [("p", {"r": 4, "t": 3})]
    assert "Retry-After" not in headers


def test_on_a_429_t_is_the_retry_after_value_not_the_full_reset():
    refused = decision(allowed=False, remaining=0, reset_after=9.2, retry_after=3.4)
    headers = rate_limit_headers(refused)
    assert headers["Retry-After"] == "4"
    assert parse_list(headers["RateLimit"]) == [("p", {"r": 0, "t": 4})]


def test_a_refusal_due_in_under_a_second_still_says_one_second():
    headers = rate_limit_headers(decision(allowed=False, remaining=0, retry_after=0.05))
    assert headers["Retry-After"] == "1"
    assert parse_list(headers["RateLimit"])[0][1]["t"] == 1
