"""ASGI lifespan support: start the object host where the server speaks lifespan."""

from __future__ import annotations

from typing import Any


class DurableLifespan:
    """Wraps an ASGI app; starts the host on ``lifespan.startup``, stops it on shutdown."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        from .host import start_host, stop_host
        from .metrics import watch_event_loop

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await start_host()
                    watch_event_loop()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stop_host()
                await send({"type": "lifespan.shutdown.complete"})
                return


def __getattr__(name: str) -> Any:
    """``durable_core.asgi.application``: Django's ASGI handler with the host's lifespan,
    for projects without an ASGI application of their own (built on first use, after
    settings are configured)."""
    if name == "application":
        from django.core.asgi import get_asgi_application

        global application
        application = DurableLifespan(get_asgi_application())
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
