"""A minimal asyncio HTTP/1.1 client for the chaos clients: one connection per request,
JSON in and out, loopback only. (No aiohttp or httpx in the environment, and urllib in
threads would let two cores' worth of threads distort the timing being measured.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


async def request(
    method: str,
    url: str,
    payload: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """Status and decoded body; raises OSError, TimeoutError or ValueError on failure."""
    async with asyncio.timeout(timeout):
        return await _request(method, url, payload, headers or {})


async def _request(method: str, url: str, payload: Any, headers: dict[str, str]) -> tuple[int, Any]:
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost"), url
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        body = b"" if payload is None else json.dumps(payload).encode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {parts.hostname}:{parts.port}",
            "Connection: close",
            f"Content-Length: {len(body)}",
        ]
        if payload is not None:
            lines.append("Content-Type: application/json")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"incomplete HTTP response ({len(raw)} bytes)")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        rest = _dechunk(rest)
    try:
        return status, json.loads(rest) if rest else None
    except ValueError:
        return status, rest.decode(errors="replace")


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
