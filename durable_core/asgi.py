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

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await start_host()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stop_host()
                await send({"type": "lifespan.shutdown.complete"})
                return
