"""Fixtures of the inspection tests: a test object with key-value data, a SQL table and
an alarm, an embedded host, and staff / non-staff clients."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from durable_core.objects import AlarmInfo, DurableObject
from durable_core.testing import object_host


class Notes(DurableObject):
    """Key-value entries, a ``notes`` table, an alarm; counts its activations."""

    namespace = "tests.Notes"
    starts = 0

    async def on_start(self) -> None:
        type(self).starts += 1

    async def add(self, body: str) -> int:
        """Insert a row into ``notes`` (created on first use); returns its id."""
        sql = self.storage.sql
        sql.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
        return sql.execute("INSERT INTO notes(body) VALUES (?) RETURNING id", body).one()["id"]

    async def put(self, key: str, value) -> None:
        self.storage.put(key, value)

    async def get(self, key: str):
        return self.storage.get(key)

    async def fill(self, start: int, count: int) -> None:
        """Keys ``k00000``… with their number as value."""
        self.storage.put_many({f"k{i:05d}": i for i in range(start, start + count)})

    async def alarm_in(self, seconds: float) -> None:
        self.storage.set_alarm(time.time() + seconds)

    async def on_alarm(self, info: AlarmInfo) -> None:
        self.storage.put("alarm_ran", info.scheduled_time)


@pytest.fixture
async def host(tmp_path):
    """An embedded object host for the test."""
    async with object_host(tmp_path / "objects") as running:
        yield running


@pytest.fixture
async def staff_client(transactional_db):
    user = await get_user_model().objects.acreate_user("staff", password="pw", is_staff=True)
    client = AsyncClient()
    await client.aforce_login(user)
    return client


@pytest.fixture
async def user_client(transactional_db):
    user = await get_user_model().objects.acreate_user("joe", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    return client
