"""Background tasks and threads of the runtime: stopping tasks reliably, the database thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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


async def run_to_completion(coro: Any) -> Any:
    """Run ``coro`` so that cancelling the caller (a turn's time limit) cannot cut it
    short: a commit is never left half done. The cancellation is re-raised afterwards."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        raise


class RuntimeDatabaseThread:
    """One thread for the runtime's thread-sensitive calls (Django ORM: records, the
    alarm index), bound into the contexts of object dispatchers.

    Without it they would run on asgiref's process-wide single thread, which sync code
    calling an object through ``async_to_sync`` from that same thread blocks: deadlock.
    It uses asgiref's per-context executor map, as ``ThreadSensitiveContext`` does."""

    def __init__(self) -> None:
        from asgiref.sync import SyncToAsync, ThreadSensitiveContext

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="durable-db")
        self._key = ThreadSensitiveContext(executor=self._executor)
        SyncToAsync.context_to_thread_executor[self._key] = self._executor

    def bind(self) -> None:
        """Send thread-sensitive calls of the current context to this thread."""
        from asgiref.sync import SyncToAsync

        SyncToAsync.thread_sensitive_context.set(self._key)

    def close(self) -> None:
        from asgiref.sync import SyncToAsync

        SyncToAsync.context_to_thread_executor.pop(self._key, None)
        # Deliberately asgiref's own flag (asgiref 3.x, as its ThreadSensitiveContext
        # sets it on exit): calls from tasks that outlived the host then fail loudly.
        self._key._exited = True
        self._executor.shutdown(wait=False)
