"""Real server subprocesses for multi-process tests.

``ServerProcess`` runs ``manage.py runserver --noreload`` (Daphne plus the embedded
object host) on a free loopback port with its own ``VAR_DIR``, waits for ``/healthz``
with bounded polling, stops it with a signal, and keeps everything it printed in a log
file so that a failing assertion can show it. HTTP is plain ``urllib`` to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "manage.py"

# No proxy, even if the environment names one: these requests stay on 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(var_dir: Path, settings: str, extra: dict[str, str] | None = None) -> dict:
    """The environment of a server process: its own VAR_DIR, no inherited DURABLE_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env.update(
        VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE=settings,
        PYTHONUNBUFFERED="1",
    )
    # Every test client is 127.0.0.1: no creation limit unless a test asks (CONTRACT).
    env.setdefault("CREATE_RATE_LIMIT", "0")
    env.update(extra or {})
    return env


def migrate(var_dir: Path, settings: str = "config.settings", timeout: float = 60) -> None:
    """``manage.py migrate --noinput`` for ``var_dir``; raises with its output on failure."""
    var_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--noinput"],
        cwd=ROOT,
        env=server_env(var_dir, settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")


class HttpResult:
    """Status and decoded JSON body of one request."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"<HttpResult {self.status} {self.body!r}>"


def http(
    method: str,
    url: str,
    payload: Any = None,
    timeout: float = 10,
    headers: dict[str, str] | None = None,
) -> HttpResult:
    """One request; any HTTP status is returned, connection errors raise."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return HttpResult(status, body)


class ManagedProcess:
    """A ``manage.py`` subprocess with its own VAR_DIR, in its own session (signals come
    from the test only), everything it prints kept in a log file."""

    def __init__(
        self,
        var_dir: Path,
        log_path: Path,
        *,
        settings: str = "config.settings",
        env: dict[str, str] | None = None,
    ) -> None:
        self.var_dir = var_dir
        self.log_path = log_path
        self.settings = settings
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "process not started"
        return self.proc.pid

    def _spawn(self, args: list[str], banner: str = "") -> None:
        with open(self.log_path, "ab") as log:
            if banner:
                log.write(banner.encode())
                log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, str(MANAGE), *args],
                cwd=ROOT,
                env=server_env(self.var_dir, self.settings, self.extra_env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest does not reach it
            )

    def wait_exit(self, timeout: float) -> int:
        """Wait for the exit; fail with the output if it does not come in time."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"pid {self.pid} still running after {timeout}s\n{self.output()}"
            ) from None

    def cleanup(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def text(self) -> str:
        """Everything printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        """The last 20,000 characters printed, for assertion messages."""
        return f"--- output of {self.log_path.name} ---\n{self.text()[-20_000:]}"


class ServerProcess(ManagedProcess):
    """One ``manage.py runserver`` subprocess on a free loopback port."""

    port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        """Spawn the server (not waiting for it); output goes to the log file."""
        self.port = free_port()
        self._spawn(
            ["runserver", "--noreload", f"127.0.0.1:{self.port}"],
            banner=f"--- runserver 127.0.0.1:{self.port}\n",
        )
        return self

    def wait_ready(self, timeout: float = 20) -> ServerProcess:
        """Poll ``/healthz`` until it answers 200; fail with the log if it does not."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} before it was ready\n"
                    + self.output()
                )
            try:
                result = http("GET", f"{self.url}/healthz", timeout=2)
            except OSError as exc:
                last = exc
            else:
                if result.status == 200:
                    return self
                last = result
            time.sleep(0.1)
        raise AssertionError(f"/healthz not 200 within {timeout}s (last: {last})\n{self.output()}")

    def run(self, timeout: float = 20) -> ServerProcess:
        """Start and wait until ready."""
        return self.start().wait_ready(timeout)

    def get(self, path: str, timeout: float = 10) -> HttpResult:
        return http("GET", self.url + path, timeout=timeout)

    def post(
        self,
        path: str,
        payload: Any = None,
        timeout: float = 10,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        return http("POST", self.url + path, payload, timeout=timeout, headers=headers)

    def kill9(self) -> None:
        """``kill -9``: no shutdown code runs."""
        os.kill(self.pid, signal.SIGKILL)
        self.wait_exit(10)

    def pause(self) -> None:
        """``kill -STOP``: the process freezes mid-whatever, its sockets stay open."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """``kill -CONT`` after ``pause``."""
        os.kill(self.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM (graceful: drain, commit, release) and wait for the exit."""
        os.kill(self.pid, signal.SIGTERM)
        return self.wait_exit(timeout)


class CommandProcess(ManagedProcess):
    """One ``manage.py <command> <args>`` subprocess that is not a plain server
    (``runobjects``, ``runcluster``)."""

    def __init__(self, args: list[str], var_dir: Path, log_path: Path, **kwargs: Any) -> None:
        super().__init__(var_dir, log_path, **kwargs)
        self.args = list(args)

    def start(self) -> CommandProcess:
        """Spawn the command (not waiting for it)."""
        self._spawn(self.args)
        return self

    def wait_output(self, needle: str, timeout: float) -> str:
        """Wait until the output contains ``needle``; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc is not None and self.proc.poll() is not None and needle not in self.text():
                raise AssertionError(
                    f"exited with {self.proc.returncode} before printing {needle!r}\n"
                    + self.output()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not printed within {timeout}s\n{self.output()}")
            time.sleep(0.05)
        return self.text()

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)


@contextlib.contextmanager
def running_server(
    directory: Path, env: dict[str, str] | None = None, settings: str = "config.settings"
) -> Iterator[ServerProcess]:
    """A migrated server of ``settings`` (the demo project by default) with its own
    VAR_DIR under ``directory``, ready to serve for the block, then killed."""
    var = directory / "var"
    migrate(var, settings)
    server = ServerProcess(var, directory / "server.log", settings=settings, env=env)
    try:
        yield server.run(30)
    finally:
        server.cleanup()
