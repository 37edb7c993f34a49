"""Sync code calling objects through async_to_sync, from a request's own thread (as
Daphne runs sync views) and from asgiref's process-wide thread (Django's test clients,
management commands): neither deadlocks on the runtime's own ORM calls."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

from durable_core.registry import get_namespace
from durable_core.testing import object_host
from tests import objects  # noqa: F401  (registers tests.Counter)

pytestmark = pytest.mark.django_db(transaction=True)


def _increment_from_sync_code(name: str) -> int:
    return async_to_sync(get_namespace("tests.Counter").get_by_name(name).increment)()


async def test_sync_code_in_a_thread_sensitive_context_can_call_a_new_object(tmp_path):
    """What Daphne does per request: the sync code has its own thread; works."""
    async with object_host(tmp_path / "o"), ThreadSensitiveContext():
        value = await asyncio.wait_for(
            sync_to_async(_increment_from_sync_code)("fresh-ctx"), timeout=10
        )
        assert value == 1


async def test_sync_code_on_the_main_thread_executor_can_call_a_new_object(tmp_path):
    async with object_host(tmp_path / "o"):
        value = await asyncio.wait_for(
            sync_to_async(_increment_from_sync_code)("fresh-main"), timeout=5
        )
        assert value == 1
