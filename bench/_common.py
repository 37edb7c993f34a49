"""Helpers shared by the benchmark scripts: percentiles, progress lines, and the
line protocol between a benchmark and the worker processes it starts."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
import traceback
from typing import Any

PROTOCOL = b"@@ "  # prefix of the lines a worker answers with on stdout


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0 to 100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def rounded(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float):
        return round(value, digits) if abs(value) < 100 else round(value, 1)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def emit(message: dict) -> None:
    sys.stdout.buffer.write(PROTOCOL + json.dumps(message).encode() + b"\n")
    sys.stdout.buffer.flush()


async def serve_commands(handlers: dict) -> None:
    """Answer one JSON command per stdin line with one protocol line on stdout."""
    loop = asyncio.get_running_loop()
    emit({"ready": True})
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        if command["op"] == "quit":
            emit({"bye": True})
            return
        try:
            result = await handlers[command["op"]](command)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        emit(result)


def save_result(name: str, result: dict) -> Any:
    """Write ``bench/results/<name>.json``; returns its path."""
    from pathlib import Path

    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def versions(*extra: str, redis_url: str | None = None) -> dict:
    """Versions of Python, SQLite, the packages a figure depends on and, given its URL,
    the redis-server it ran against."""
    import importlib.metadata
    import sqlite3

    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    if redis_url is not None:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            found["redis-server"] = client.info("server")["redis_version"]
        finally:
            client.close()
    for package in ("django", "channels", "daphne", "channels-redis", "redis", *extra):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine(load: Any) -> dict:
    """The machine a result was measured on (``load``: 1-min load average at start, end)."""
    return {
        "cpus": os.cpu_count(),
        "load_average_1min_start_end": load,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
