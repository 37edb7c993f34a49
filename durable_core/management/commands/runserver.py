"""``runserver``: Daphne's development server, plus this process's object host.

Daphne implements no ASGI lifespan, so the host (lease renewal, alarm scheduler) is
started by the command that starts the server: an alarm due after a restart fires
before anyone calls (DESIGN §7). Shutdown (Ctrl-C, SIGTERM) drains and commits.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging

from daphne.management.commands.runserver import Command as DaphneRunserver
from daphne.server import Server
from django.conf import settings
from django.core.management.base import CommandError

from durable_core import _daphne

logger = logging.getLogger("durable_core")


_daphne.install()  # close codes, read backpressure and slow-reader limits at the socket


class HostingServer(Server):
    """A Daphne server whose reactor also runs the object host."""

    start_error: BaseException | None = None

    def run(self) -> None:
        from twisted.internet import defer, reactor

        from durable_core.host import start_host, stop_host
        from durable_core.metrics import watch_event_loop

        def started(fut: asyncio.Future) -> None:
            if fut.exception() is not None:
                HostingServer.start_error = fut.exception()
                logger.critical("object host failed to start: %s", fut.exception())
                reactor.stop()

        def start() -> None:
            asyncio.ensure_future(start_host()).add_done_callback(started)
            watch_event_loop()

        reactor.callWhenRunning(start)
        reactor.addSystemEventTrigger(
            "before",
            "shutdown",
            lambda: defer.Deferred.fromFuture(asyncio.ensure_future(stop_host())),
        )
        super().run()


class Command(DaphneRunserver):
    help = "Start the ASGI development server with this process's durable object host."
    server_cls = HostingServer

    def handle(self, *args, **options):
        if options.get("use_asgi", True) and not getattr(settings, "ASGI_APPLICATION", None):
            # A project made by startproject has no ASGI_APPLICATION (check W004 says so).
            settings.ASGI_APPLICATION = default_asgi_application()
        super().handle(*args, **options)

    def inner_run(self, *args, **options):
        super().inner_run(*args, **options)
        if HostingServer.start_error is not None:
            raise CommandError(str(HostingServer.start_error))


def default_asgi_application() -> str:
    """Where ASGI_APPLICATION is unset: the ``asgi.py`` beside the project's WSGI module
    (``startproject`` writes both), else Django's plain ASGI handler."""
    wsgi = getattr(settings, "WSGI_APPLICATION", None) or ""
    package = wsgi.rsplit(".", 2)[0] if wsgi.count(".") >= 2 else ""
    try:
        if package and importlib.util.find_spec(f"{package}.asgi") is not None:
            return f"{package}.asgi.application"
    except ImportError:  # the package itself is missing: the WSGI setting is stale
        pass
    return "durable_core.asgi.application"
