"""One rule for client addresses (issue 16 §12): HTTP (``web.client_ip``) and WebSocket
connects (``consumers.client_address``) agree on every ``TRUSTED_PROXIES`` case, and an
entry with host bits (``10.0.0.1/24``) or a malformed one never raises."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from durable_core.consumers import client_address
from durable_core.web import client_ip

CASES = [
    # (trusted, peer, X-Forwarded-For, client)
    ([], "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no proxy trusted: the peer
    (["10.0.0.0/8"], "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # peer not trusted
    (["10.0.0.0/8"], "10.1.2.3", "198.51.100.1", "198.51.100.1"),
    (["10.0.0.0/8"], "10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"),
    (["10.0.0.0/8"], "10.1.2.3", "10.7.7.7, 10.9.9.9", "10.7.7.7"),  # all trusted: farthest
    (["10.0.0.0/8"], "10.1.2.3", "", "10.1.2.3"),  # nothing forwarded: the peer
    (["10.0.0.1/24"], "10.0.0.77", "198.51.100.2", "198.51.100.2"),  # host bits: lenient
    (["not-a-network", "10.0.0.0/8"], "10.0.0.5", "198.51.100.3", "198.51.100.3"),
]


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "expected"), CASES)
def test_http_and_websocket_agree_on_the_client_address(
    settings, trusted, peer, forwarded, expected
):
    settings.TRUSTED_PROXIES = trusted
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR=peer, **headers)
    scope = {
        "type": "websocket",
        "client": (peer, 5000),
        "headers": [(b"x-forwarded-for", forwarded.encode())] if forwarded else [],
    }
    assert client_ip(request) == expected
    assert client_address(scope) == expected
