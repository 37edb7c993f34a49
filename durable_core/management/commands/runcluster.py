"""``runcluster``: Redis plus three object hosts on one machine, supervised (``make cluster``).

Starts a private Redis on a free loopback port (data under VAR_DIR/redis), then three
Daphne server processes on PORT+1…PORT+3 in cluster mode. When a host dies (even by
``kill -9``) the supervisor says so and starts it again while the others keep serving;
Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from durable_core.conf import get_var_dir
from durable_core.testing.redis_server import RedisServer

RESTART_DELAY = 1.0


class Command(BaseCommand):
    help = "Run Redis and three durable object hosts on PORT+1..PORT+3 (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="hosts listen on port+1..+3")
        parser.add_argument("--hosts", type=int, default=3)

    def handle(self, *args, **options):
        var_dir = get_var_dir().resolve()
        redis = RedisServer(var_dir / "redis").start()
        self.stdout.write(f"redis: {redis.url} (pid {redis.process.pid})")
        ports = [options["port"] + i for i in range(1, options["hosts"] + 1)]
        env = dict(os.environ, DURABLE_REDIS_URL=redis.url, VAR_DIR=str(var_dir))
        hosts = {port: self._spawn(port, env, var_dir) for port in ports}
        self.stdout.write(
            "cluster up: " + ", ".join(f"http://127.0.0.1:{p}/" for p in ports) + " (Ctrl-C stops)"
        )
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                time.sleep(0.2)
                for port, proc in list(hosts.items()):
                    code = proc.poll()
                    if code is None or stopping:
                        continue
                    alive = [p for p, other in hosts.items() if other.poll() is None]
                    self.stdout.write(
                        f"host on :{port} (pid {proc.pid}) died (exit {code}); "
                        f"still serving: {', '.join(f':{p}' for p in alive) or 'none'}; "
                        f"restarting it in {RESTART_DELAY:.0f} s"
                    )
                    time.sleep(RESTART_DELAY)
                    hosts[port] = self._spawn(port, env, var_dir)
                if redis.process.poll() is not None and not stopping:
                    self.stdout.write("redis died; restarting it (empty: hosts recover)")
                    redis.start()
        finally:
            self.stdout.write("stopping the cluster")
            for proc in hosts.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in hosts.values():
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()  # no child outlives the supervisor
                    proc.wait(5)
            redis.stop()

    def _spawn(self, port: int, env: dict, var_dir: Path) -> subprocess.Popen:
        log = open(var_dir / f"host-{port}.log", "ab")  # noqa: SIM115 (kept open by the child)
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops them in order
        )
        self.stdout.write(f"host on :{port}: pid {proc.pid}, log {log.name}")
        self.stdout.flush()
        return proc
