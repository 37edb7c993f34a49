"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while any is still running.

    One ``cancel()`` is not always enough: on Python 3.11 ``asyncio.wait_for`` (which
    redis-py wraps around every send) drops a cancellation that arrives just as its
    inner call completes, and a ``while True`` loop then carries on for ever.
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while pending and loop.time() < give_up:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.1)
    for task in pending:
        logger.warning("task %s did not stop within %.1f s", task.get_name(), timeout)
