"""Garbage collection of the records of deleted objects (issue 16 §9): records go, what
the fence needs stays, one row per namespace (``records.purge_deleted_records``,
``manage.py purgerecords``). A deleted object recreated after its record was purged,
by a host whose lease counters start from zero, still gets a token above every old one."""

from __future__ import annotations

import io

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from durable_core import records
from durable_core.models import NamespaceFenceFloor, ObjectRecord
from durable_core.registry import get_namespace
from durable_core.testing import evict, object_host
from tests import objects  # noqa: F401 (registers tests.Counter)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


apurge = sync_to_async(records.purge_deleted_records)


def counter(name: str):
    return get_namespace("tests.Counter").get_by_name(name)


async def _token_after_handovers(stub, handovers: int) -> int:
    """Make the object change hands a few times, so its token is well above 1."""
    for _ in range(handovers):
        await stub.increment()
        await evict(stub)
    await stub.increment()
    return await stub.token()


async def test_purge_removes_deleted_records_and_keeps_the_highest_floor(tmp_path):
    async with object_host(tmp_path / "o"):
        gone, kept = counter("gc-gone"), counter("gc-kept")
        token = await _token_after_handovers(gone, 3)
        await gone.destroy_me()
        await kept.increment()
        purged = await apurge(0)
    assert purged == 1
    assert not await ObjectRecord.objects.filter(object_id=gone.id.hex).aexists()
    assert await ObjectRecord.objects.filter(object_id=kept.id.hex, deleted=False).aexists()
    floor = await NamespaceFenceFloor.objects.aget(namespace="tests.Counter")
    assert floor.floor >= token
    assert await records.aget_fence_floor(gone.id) >= token


async def test_an_object_recreated_after_its_record_was_purged_gets_a_higher_token(tmp_path):
    storage = tmp_path / "o"
    async with object_host(storage):
        stub = counter("gc-again")
        old = await _token_after_handovers(stub, 4)
        await stub.destroy_me()
        assert await apurge(0) == 1
    # A new process: its lease store counts from zero, and the record is gone.
    async with object_host(storage):
        assert await stub.increment() == 1  # a fresh object under the same ID
        assert await stub.token() > old
        record = await ObjectRecord.objects.aget(object_id=stub.id.hex)
        assert record.fence_floor > old and not record.deleted


async def test_recent_and_revived_records_stay(tmp_path):
    async with object_host(tmp_path / "o"):
        recent, revived = counter("gc-recent"), counter("gc-revived")
        for stub in (recent, revived):
            await stub.increment()
            await stub.destroy_me()
        await revived.increment()  # a new owner revives its record
        assert await apurge(3600) == 0
        assert await apurge(0) == 1
    assert await ObjectRecord.objects.filter(object_id=revived.id.hex, deleted=False).aexists()
    assert not await ObjectRecord.objects.filter(object_id=recent.id.hex).aexists()


async def test_the_floor_of_one_namespace_leaves_the_others_alone(tmp_path):
    async with object_host(tmp_path / "o"):
        stub = counter("gc-ns")
        await _token_after_handovers(stub, 3)
        await stub.destroy_me()
        await apurge(0)
        other = get_namespace("tests.Stateful").get_by_name("gc-ns")
    assert await records.aget_fence_floor(other.id) == 0


@pytest.mark.django_db
def test_purgerecords_command_reports_what_it_removed():
    ObjectRecord.objects.create(namespace="tests.Counter", object_id="ab" * 32, deleted=True)
    ObjectRecord.objects.create(namespace="tests.Counter", object_id="cd" * 32, fence_floor=9)
    out = io.StringIO()
    call_command("purgerecords", "--older-than", "0", stdout=out)
    assert "purged 1 records" in out.getvalue()
    assert list(ObjectRecord.objects.values_list("object_id", flat=True)) == ["cd" * 32]
