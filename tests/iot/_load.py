"""Worker of the multi-process PATCH test: plain urllib in threads, one OS process each.

Kept free of Django so that ``spawn`` children start fast.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def patch_once(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    try:
        with _opener.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def patch_many(url: str, worker: int, count: int, threads: int) -> list[tuple[int, int, bool]]:
    """``count`` PATCHes without a version; (status, version, token echoed) of each."""

    def one(i: int) -> tuple[int, int, bool]:
        token = f"{worker}-{i}"
        body = {"state": {"reported": {f"w{worker}": i}}, "client_token": token}
        status, answer = patch_once(url, body)
        answer = answer if isinstance(answer, dict) else {}
        return status, answer.get("version", -1), answer.get("client_token") == token

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))
