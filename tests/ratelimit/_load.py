"""A client OS process hammering the rate limiter's REST API (run by the accuracy tests).

    python -m tests.ratelimit._load --urls http://127.0.0.1:P1,... --policy t \\
        --key hot --duration 6 --connections 32 --out results.jsonl
    python -m tests.ratelimit._load ... --keys 1000 --prefix k- --offset 1   # each key once

``--connections`` threads each keep one HTTP/1.1 keep-alive connection (plain
``http.client`` to 127.0.0.1 only) and send POSTs back to back; a connection error moves
the thread to the next server. Every answer is written as one JSON line
``[status, key, at, retry_after, remaining]`` (``at``: the server's decision time), errors
as ``[0, key, null, null, null]``. Imports no Django, so it starts fast.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
import urllib.parse
from queue import Empty, Queue


class Client:
    """One keep-alive connection that fails over to the next server on errors."""

    def __init__(self, urls: list[str], start: int, timeout: float) -> None:
        self.targets = [urllib.parse.urlsplit(url) for url in urls]
        self.index = start % len(self.targets)
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str) -> tuple[int, dict | None]:
        target = self.targets[self.index]
        if self.conn is None:
            assert target.hostname == "127.0.0.1", "load stays on loopback"
            self.conn = http.client.HTTPConnection(
                target.hostname, target.port, timeout=self.timeout
            )
        try:
            self.conn.request("POST", path, body=b"", headers={"Content-Length": "0"})
            response = self.conn.getresponse()
            raw = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self._drop()
            return response.status, json.loads(raw) if raw else None
        except (OSError, http.client.HTTPException, ValueError):
            self._drop()
            self.index = (self.index + 1) % len(self.targets)
            return 0, None

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--key")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--keys", type=int, default=0)
    parser.add_argument("--prefix", default="k-")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch time to begin")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    urls = args.urls.split(",")
    results: list[list] = []
    lock = threading.Lock()
    work: Queue[str] = Queue()
    if args.keys:
        for i in range(args.keys):
            work.put(f"{args.prefix}{i}")

    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    stop_at = time.monotonic() + args.duration

    def run(worker: int) -> None:
        client = Client(urls, args.offset + worker, timeout=15)
        mine = []
        while True:
            if args.keys:
                try:
                    key = work.get_nowait()
                except Empty:
                    break
            else:
                if time.monotonic() >= stop_at:
                    break
                key = args.key
            path = f"/api/ratelimit/{args.policy}/{urllib.parse.quote(key, safe='')}"
            status, body = client.post(path)
            if status in (200, 429) and body:
                mine.append([status, key, body["at"], body["retry_after"], body["remaining"]])
            else:
                mine.append([status, key, None, None, None])
                if status == 0:
                    time.sleep(0.05)  # the server is gone: do not spin
        client._drop()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(args.out, "w") as out:
        for row in results:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
