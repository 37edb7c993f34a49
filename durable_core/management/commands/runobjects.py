"""``runobjects``: a host-only worker process for cluster mode.

It serves no HTTP; it owns objects (leases, storage, alarms) and answers calls routed to
it over the transport. SIGINT/SIGTERM drain its objects and release their leases.
"""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from durable_core.conf import is_cluster_mode


class Command(BaseCommand):
    help = "Run a durable object host without an HTTP server (cluster mode)."

    def handle(self, *args, **options):
        if not is_cluster_mode():
            raise CommandError(
                "runobjects needs cluster mode: set DURABLE_OBJECTS['REDIS_URL'] "
                "(or DURABLE_REDIS_URL); in embedded mode the server process hosts objects"
            )
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from durable_core.host import start_host, stop_host

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        host = await start_host()
        self.stdout.write(f"object host {host.host_id} running (Ctrl-C to stop)")
        self.stdout.flush()
        try:
            await stop.wait()
        finally:
            await stop_host()
            self.stdout.write(f"object host {host.host_id} stopped")
